import { STAGES, type Job, type JobStatus, type StageName } from '../api/types';

export const STAGE_LABELS: Record<StageName, string> = { classify: 'Classify', explain: 'Explain', detect: 'Detect', assess: 'Assess' };
const STATUS_TEXT: Record<JobStatus, string> = {
  queued: 'queued',
  running: 'running',
  succeeded: 'done',
  failed: 'failed',
  canceled: 'canceled',
};
const ICON: Record<JobStatus, string> = { queued: '○', running: '◐', succeeded: '✓', failed: '✕', canceled: '–' };

export function StatusBadge({ status }: { status: JobStatus | 'uploading' | 'rejected' | 'missing' }) {
  const text = status === 'uploading' || status === 'rejected' ? status : status === 'missing' ? 'not found' : STATUS_TEXT[status];
  return <span className={`badge badge-${status}`}>{text}</span>;
}

export function StageList({ job }: { job: Job }) {
  const names = STAGES.filter((s) => job.stages?.[s]);
  return (
    <ol className="stages" aria-label="Stages">
      {names.map((s) => {
        const st = job.stages[s]!;
        const ms = st.speed_ms ? Object.values(st.speed_ms).reduce((a, b) => a + b, 0) : 0;
        return (
          <li key={s} className={`stage stage-${st.status}`} data-stage={s} data-status={st.status}>
            <span className="stage-icon" aria-hidden="true">
              {ICON[st.status]}
            </span>
            <span className="stage-name">{STAGE_LABELS[s]}</span>
            <span className="stage-status">
              {STATUS_TEXT[st.status]}
              {st.status === 'succeeded' && ms > 0 ? ` · ${ms.toFixed(0)} ms` : ''}
              {st.attempts > 1 ? ` · try ${st.attempts}` : ''}
            </span>
          </li>
        );
      })}
    </ol>
  );
}

export function ProgressBar({ value, label }: { value: number | null; label: string }) {
  const v = value === null ? null : Math.round(Math.max(0, Math.min(1, value)) * 100);
  return (
    <div
      className={v === null ? 'progress indeterminate' : 'progress'}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={v ?? undefined}
    >
      <div className="progress-fill" style={v === null ? undefined : { width: `${v}%` }} />
    </div>
  );
}
