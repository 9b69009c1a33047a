import { useId, useState, type FormEvent } from 'react';
import { isValidJobId, jobHash, shortId } from '../lib/format';
import type { RecentJob } from '../lib/recentJobs';

export function OpenJobForm({ onOpen }: { onOpen: (id: string) => void }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const inputId = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    const id = value.trim().replace(/^.*#\/jobs\//, '');
    if (!isValidJobId(id)) {
      setError('Enter a job id (letters, digits, - and _ only).');
      return;
    }
    setError(null);
    setValue('');
    onOpen(id);
  };
  return (
    <form className="open-job" onSubmit={submit} noValidate>
      <label htmlFor={inputId}>Open a job by id</label>
      <div className="row">
        <input
          id={inputId}
          type="text"
          value={value}
          onChange={(e) => setValue(e.target.value)}
          placeholder="e.g. 3f2c9a…"
          autoComplete="off"
          spellCheck={false}
          aria-invalid={!!error}
          aria-describedby={error ? `${inputId}-err` : undefined}
        />
        <button type="submit" className="btn">
          Open
        </button>
      </div>
      {error && (
        <p id={`${inputId}-err`} className="error-text small" role="alert">
          {error}
        </p>
      )}
    </form>
  );
}

export function RecentJobs({ jobs, onClear, onOpen }: { jobs: RecentJob[]; onClear: () => void; onOpen?: (id: string) => void }) {
  return (
    <section className="recent" aria-labelledby="recent-heading">
      <div className="section-head">
        <h2 id="recent-heading">Recent jobs</h2>
        {jobs.length > 0 && (
          <button type="button" className="btn btn-ghost small" onClick={onClear}>
            Clear
          </button>
        )}
      </div>
      {jobs.length === 0 ? (
        <p className="muted small">Jobs you submit appear here and are kept in this browser.</p>
      ) : (
        <ul className="recent-list" data-testid="recent-jobs">
          {jobs.map((j) => (
            <li key={j.id}>
              <a
                href={jobHash(j.id)}
                className="recent-link"
                onClick={(e) => {
                  if (!onOpen || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return; // new tab etc.: the plain link
                  e.preventDefault();
                  onOpen(j.id); // also when the address already shows this job (a plain link would do nothing)
                }}
              >
                <span className="recent-name">{j.filename || `job ${shortId(j.id)}`}</span>
                <span className="muted small">
                  {j.label ? `${j.label} · ` : ''}
                  {j.status ?? 'submitted'} · {j.model || 'default'} · {shortId(j.id)}
                </span>
              </a>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
