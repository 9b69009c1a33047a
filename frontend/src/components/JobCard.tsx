import { useEffect, useState } from 'react';
import { cancelJob, toApiError, url } from '../api/client';
import { isTerminal, STAGES, type ErrorInfo, type Job, type JobStatus, type StageName } from '../api/types';
import { useJob } from '../hooks/useJob';
import { jobHash, shortId } from '../lib/format';
import { AssessmentView } from './AssessmentView';
import { DetectionView } from './DetectionView';
import { GradCamView } from './GradCamView';
import { PredictionView } from './ProbabilityChart';
import { ProgressBar, StageList, StatusBadge } from './StageList';
import { Tabs, type TabDef } from './Tabs';

export interface Entry {
  key: string;
  filename: string;
  model: string;
  file?: Blob;
  thumbUrl?: string;
  jobId?: string;
  phase: 'uploading' | 'rejected' | 'submitted';
  uploadError?: ErrorInfo & { clientSide?: boolean };
}

interface Props {
  entry: Entry;
  highlighted?: boolean;
  onRetry: (entry: Entry) => void;
  onRemove: (entry: Entry) => void;
  onJobUpdate?: (job: Job) => void;
  /** The gateway wants an API key to read this job (a shared link opened in a fresh browser). */
  onUnauthorized?: () => void;
}

function StagePending({ job, stage, what }: { job: Job; stage: StageName; what: string }) {
  const st = job.stages?.[stage];
  if (!st) return <p className="muted">{what} was not requested for this job.</p>;
  if (st.status === 'failed')
    return (
      <p className="error-text" role="alert">
        {what} failed: {st.error?.message ?? 'unknown error'}
      </p>
    );
  if (st.status === 'canceled') return <p className="muted">{what} was canceled.</p>;
  if (st.status === 'succeeded') return <p className="muted">{what} finished but sent no result.</p>;
  return (
    <p className="muted waiting">
      <span className="spinner" aria-hidden="true" /> Waiting for {what.toLowerCase()} ({st.status})…
    </p>
  );
}

function resultTabs(job: Job): TabDef[] {
  const inputUrl = job.input?.url ?? job.links?.input ?? `/v1/jobs/${job.id}/artifacts/input`;
  const r = job.results ?? {};
  const tabs: TabDef[] = [];
  const mark = (s: StageName) => {
    const st = job.stages?.[s]?.status;
    return st === 'succeeded' ? '' : st === 'failed' ? ' ✕' : ' …';
  };
  if (job.stages?.classify)
    tabs.push({
      id: 'prediction',
      label: `Prediction${mark('classify')}`,
      panel: r.classification ? (
        <PredictionView result={r.classification} inferenceMs={job.stages.classify?.speed_ms?.inference} />
      ) : (
        <StagePending job={job} stage="classify" what="Classification" />
      ),
    });
  if (job.stages?.explain)
    tabs.push({
      id: 'gradcam',
      label: `Grad-CAM${mark('explain')}`,
      panel: r.explanation ? <GradCamView inputUrl={inputUrl} explanation={r.explanation} /> : <StagePending job={job} stage="explain" what="Explanation" />,
    });
  if (job.stages?.detect)
    tabs.push({
      id: 'detection',
      label: `Detection${mark('detect')}`,
      panel: r.detection ? <DetectionView inputUrl={inputUrl} result={r.detection} /> : <StagePending job={job} stage="detect" what="Detection" />,
    });
  if (job.stages?.assess)
    tabs.push({
      id: 'assessment',
      label: `Assessment${mark('assess')}`,
      panel: r.assessment ? <AssessmentView inputUrl={inputUrl} result={r.assessment} /> : <StagePending job={job} stage="assess" what="Assessment" />,
    });
  return tabs;
}

export function JobCard({ entry, highlighted, onRetry, onRemove, onJobUpdate, onUnauthorized }: Props) {
  const { job, error, transport, reconnect } = useJob(entry.phase === 'submitted' ? entry.jobId ?? null : null);
  useEffect(() => {
    if (error?.status === 401) onUnauthorized?.(); // the card keeps retrying and recovers once a key is saved
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [error?.status]);
  const [cancelError, setCancelError] = useState<string | null>(null);
  const [canceling, setCanceling] = useState(false);

  useEffect(() => {
    if (job) onJobUpdate?.(job);
    // Only status / top label changes matter for the recent-jobs list.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [job?.id, job?.status, job?.results?.classification?.label]);

  const missing = !job && error?.code === 'job_not_found';
  const status: JobStatus | 'uploading' | 'rejected' | 'missing' =
    entry.phase === 'submitted' ? job?.status ?? (missing ? 'missing' : 'queued') : entry.phase;
  const filename = entry.filename || job?.input?.filename || 'photo';
  const thumb = entry.thumbUrl ?? (job?.input?.url ? url(job.input.url) : undefined);
  const failed = entry.phase === 'rejected' || missing || job?.status === 'failed' || job?.status === 'canceled';
  const canRetry =
    entry.phase === 'rejected'
      ? !entry.uploadError?.clientSide
      : (!!job && (job.status === 'failed' || job.status === 'canceled')) || (missing && !!entry.file);
  const lost = !!error && !(job && isTerminal(job.status));

  const cancel = async () => {
    if (!entry.jobId) return;
    setCanceling(true);
    setCancelError(null);
    try {
      await cancelJob(entry.jobId);
      reconnect();
    } catch (e) {
      setCancelError(toApiError(e).message);
    } finally {
      setCanceling(false);
    }
  };

  return (
    <article
      className={`card job-card${highlighted ? ' highlighted' : ''}${failed ? ' failed' : ''}`}
      data-testid="job-card"
      data-job-id={entry.jobId ?? ''}
      data-job-status={status}
      aria-label={`Job for ${filename}`}
      id={entry.jobId ? `job-${entry.jobId}` : undefined}
      tabIndex={-1}
    >
      <header className="job-head">
        {thumb ? <img className="thumb" src={thumb} alt="" /> : <div className="thumb thumb-empty" aria-hidden="true" />}
        <div className="job-meta">
          <h3 className="job-title" title={filename}>
            {filename}
          </h3>
          <p className="muted small">
            {entry.model || job?.model || 'default model'}
            {entry.jobId && (
              <>
                {' · '}
                <a href={jobHash(entry.jobId)} title={`Permalink to job ${entry.jobId}`}>
                  job {shortId(entry.jobId)}
                </a>
              </>
            )}
            {transport === 'polling' && !isTerminal(job?.status) ? ' · polling' : ''}
          </p>
        </div>
        <StatusBadge status={status} />
      </header>

      {entry.phase === 'uploading' && <ProgressBar value={null} label={`Uploading ${filename}`} />}
      {entry.phase === 'submitted' && (
        <ProgressBar value={job ? job.progress ?? 0 : null} label={`Progress for ${filename}`} />
      )}
      {job && <StageList job={job} />}

      {entry.phase === 'rejected' && entry.uploadError && (
        <p className="error-text" role="alert" data-error-code={entry.uploadError.code}>
          {entry.uploadError.message}
        </p>
      )}
      {job &&
        !job.error &&
        STAGES.map((s) => {
          const st = job.stages?.[s];
          return st?.status === 'failed' ? (
            <p key={s} className="error-text" role="alert" data-error-code={st.error?.code ?? 'stage_failed'}>
              {s}: {st.error?.message ?? 'failed'}
            </p>
          ) : null;
        })}
      {job?.error && (
        <p className="error-text" role="alert" data-error-code={job.error.code}>
          {job.error.stage ? `${job.error.stage}: ` : ''}
          {job.error.message}
        </p>
      )}
      {lost && error && (
        <p className="error-text" role="alert" data-error-code={error.code}>
          {error.message}
          {error.code !== 'job_not_found' && transport !== 'done' ? ' — retrying automatically.' : ''}
        </p>
      )}
      {cancelError && (
        <p className="error-text" role="alert">
          Cancel failed: {cancelError}
        </p>
      )}

      <div className="actions">
        {canRetry && (
          <button type="button" className="btn btn-primary" onClick={() => onRetry(entry)}>
            Retry
          </button>
        )}
        {lost && !missing && (
          <button type="button" className="btn" onClick={reconnect}>
            Reconnect now
          </button>
        )}
        {entry.phase === 'submitted' && job && !isTerminal(job.status) && (
          <button type="button" className="btn" onClick={cancel} disabled={canceling}>
            {canceling ? 'Canceling…' : 'Cancel'}
          </button>
        )}
        <button type="button" className="btn btn-ghost" onClick={() => onRemove(entry)} aria-label={`Remove ${filename} from the list`}>
          Remove
        </button>
      </div>

      {job && job.stages && Object.keys(job.stages).length > 0 && <Tabs label={`Results for ${filename}`} tabs={resultTabs(job)} />}
    </article>
  );
}
