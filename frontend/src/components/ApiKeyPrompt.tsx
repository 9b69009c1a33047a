import { useId, useState, type FormEvent } from 'react';

/** Shown when the gateway answers 401: the key is kept for this browser session only. */
export function ApiKeyPrompt({ onSave }: { onSave: (key: string) => void }) {
  const [value, setValue] = useState('');
  const inputId = useId();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (value.trim()) onSave(value.trim());
  };
  return (
    <form className="card api-key" onSubmit={submit} role="region" aria-labelledby={`${inputId}-title`}>
      <h2 id={`${inputId}-title`}>API key required</h2>
      <p className="muted small">
        This gateway needs an API key (ask its operator for one made with <code>damagelens keys create</code>). It is kept in this
        browser tab's session only.
      </p>
      <div className="row">
        <label htmlFor={inputId} className="sr-only">
          API key
        </label>
        <input id={inputId} type="password" value={value} onChange={(e) => setValue(e.target.value)} placeholder="dl_…" autoComplete="off" />
        <button type="submit" className="btn btn-primary">
          Use key
        </button>
      </div>
    </form>
  );
}
