import { useEffect, useState } from 'react';
import { parseJobHash } from '../lib/format';

/** The job id in `#/jobs/{id}`, or null on any other hash. */
export function useHashJobId(): string | null {
  const [id, setId] = useState(() => parseJobHash(window.location.hash));
  useEffect(() => {
    const onChange = () => setId(parseJobHash(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return id;
}
