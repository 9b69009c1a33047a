import { useState } from 'react';
import { checkHealth, GATEWAY_UNREACHABLE } from '../api/client';

export function GatewayBanner({ onRecovered }: { onRecovered: () => void }) {
  const [checking, setChecking] = useState(false);
  const retry = async () => {
    setChecking(true);
    try {
      await checkHealth();
      onRecovered();
    } catch {
      /* still down: the banner stays */
    } finally {
      setChecking(false);
    }
  };
  return (
    <div className="banner" role="alert" data-testid="gateway-banner">
      <span>
        <strong>{GATEWAY_UNREACHABLE}.</strong> Check your connection or that the service is running; jobs in progress keep retrying.
      </span>
      <button type="button" className="btn" onClick={retry} disabled={checking}>
        {checking ? 'Checking…' : 'Retry'}
      </button>
    </div>
  );
}
