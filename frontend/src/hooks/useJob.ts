// Follow one job live: SSE first (`event: job`), polling with exponential backoff as the fallback.
import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, eventsUrl, getJob, toApiError } from '../api/client';
import { isTerminal, type Job } from '../api/types';

export type Transport = 'sse' | 'polling' | 'done' | 'idle';

export interface UseJobOptions {
  /** First polling delay (ms); doubles after every poll that brings no change, up to `pollMaxMs`. */
  pollInitialMs?: number;
  pollMaxMs?: number;
  /** Fall back to polling if the stream has not delivered its first message after this long. */
  sseFirstMessageTimeoutMs?: number;
  /** Injected for tests; defaults to the browser's EventSource when there is one. */
  createEventSource?: ((url: string) => EventSource) | null;
}

export interface UseJobState {
  job: Job | null;
  error: ApiError | null;
  transport: Transport;
  /** Restart following the job (after a lost gateway, or a 404 that may have been transient). */
  reconnect: () => void;
}

const defaultFactory = (): ((url: string) => EventSource) | null =>
  typeof EventSource === 'undefined' ? null : (u: string) => new EventSource(u);

/** Fingerprint used to tell whether a poll brought anything new (resets the backoff). */
const fingerprint = (j: Job) => `${j.status}|${j.progress}|${j.updated_at}|${Object.keys(j.results ?? {}).length}`;

export function useJob(id: string | null, options: UseJobOptions = {}): UseJobState {
  const { pollInitialMs = 500, pollMaxMs = 5000, sseFirstMessageTimeoutMs = 10000 } = options;
  const factoryRef = useRef(options.createEventSource === undefined ? defaultFactory() : options.createEventSource);
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [transport, setTransport] = useState<Transport>('idle');
  const [attempt, setAttempt] = useState(0);

  const reconnect = useCallback(() => setAttempt((n) => n + 1), []);

  // A different job id (e.g. a retry submitted a new job): forget the old one's state.
  const [shownId, setShownId] = useState(id);
  if (shownId !== id) {
    setShownId(id);
    setJob(null);
    setError(null);
  }

  useEffect(() => {
    if (!id) {
      setTransport('idle');
      return;
    }
    let stopped = false;
    let es: EventSource | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let firstMessageTimer: ReturnType<typeof setTimeout> | undefined;
    const abort = new AbortController();
    let lastPrint = '';

    const stop = () => {
      stopped = true;
      es?.close();
      es = null;
      clearTimeout(timer);
      clearTimeout(firstMessageTimer);
      abort.abort();
    };

    const accept = (j: Job): boolean => {
      setJob(j);
      setError(null);
      const changed = fingerprint(j) !== lastPrint;
      lastPrint = fingerprint(j);
      if (isTerminal(j.status)) {
        stop();
        setTransport('done');
      }
      return changed;
    };

    /** Records a fetch error; false when polling should end (aborted, or the job is gone). */
    const reportError = (err: unknown): boolean => {
      const e = toApiError(err);
      if (e.code === 'aborted') return false;
      setError(e);
      if (e.code === 'job_not_found') {
        stop();
        setTransport('done');
        return false;
      }
      return true;
    };

    const startPolling = () => {
      es?.close();
      es = null;
      clearTimeout(firstMessageTimer);
      if (stopped) return;
      setTransport('polling');
      let delay = pollInitialMs;
      const tick = async () => {
        if (stopped) return;
        try {
          const j = await getJob(id, { signal: abort.signal });
          if (stopped) return;
          const changed = accept(j);
          if (stopped) return;
          delay = changed ? pollInitialMs : Math.min(pollMaxMs, delay * 2);
        } catch (err) {
          if (stopped || !reportError(err)) return;
          delay = Math.min(pollMaxMs, delay * 2);
        }
        timer = setTimeout(tick, delay);
      };
      timer = setTimeout(tick, delay);
    };

    const factory = factoryRef.current;
    if (factory) {
      try {
        es = factory(eventsUrl(id));
      } catch {
        es = null;
      }
    }
    if (es) {
      setTransport('sse');
      const source = es;
      firstMessageTimer = setTimeout(() => {
        if (!stopped && !lastPrint) startPolling();
      }, sseFirstMessageTimeoutMs);
      source.addEventListener('job', (ev) => {
        if (stopped || source !== es) return;
        clearTimeout(firstMessageTimer);
        try {
          accept(JSON.parse((ev as MessageEvent<string>).data) as Job);
        } catch {
          startPolling(); // malformed message: trust the REST endpoint instead
        }
      });
      source.onerror = () => {
        if (stopped || source !== es) return;
        startPolling();
      };
    } else {
      // No EventSource at all: poll straight away.
      setTransport('polling');
      const j = getJob(id, { signal: abort.signal });
      j.then(
        (v) => {
          if (!stopped) accept(v);
          if (!stopped) startPolling();
        },
        (err) => {
          if (!stopped && reportError(err)) startPolling();
        },
      );
    }
    return stop;
  }, [id, attempt, pollInitialMs, pollMaxMs, sseFirstMessageTimeoutMs]);

  return { job, error, transport, reconnect };
}
