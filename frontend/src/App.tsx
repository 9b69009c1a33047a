import { useCallback, useEffect, useRef, useState } from 'react';
import { fetchInput, setGatewayReachable, submitInspection, submitJob, toApiError } from './api/client';
import { ApiKeyPrompt } from './components/ApiKeyPrompt';
import { InspectionBar, type InspectionEntry } from './components/InspectionBar';
import { setApiKey } from './lib/apiKey';
import type { Job } from './api/types';
import { GatewayBanner } from './components/GatewayBanner';
import { JobCard, type Entry } from './components/JobCard';
import { ModelPicker } from './components/ModelPicker';
import { OpenJobForm, RecentJobs } from './components/RecentJobs';
import { UploadZone } from './components/UploadZone';
import { useGatewayReachable } from './hooks/useGateway';
import { useHashJobId } from './hooks/useHashRoute';
import { useModels } from './hooks/useModels';
import { jobHash } from './lib/format';
import { loadRecent, saveRecent, upsertRecent, type RecentJob } from './lib/recentJobs';
import { validateFile } from './lib/validation';

let seq = 0;
const newKey = () => `e${Date.now().toString(36)}${(seq++).toString(36)}`;

export function App() {
  const models = useModels();
  const reachable = useGatewayReachable();
  const hashJobId = useHashJobId();
  const [chosenModel, setChosenModel] = useState<string | null>(null);
  const model = chosenModel ?? models.defaultModel;
  const [entries, setEntries] = useState<Entry[]>([]);
  const [recent, setRecent] = useState<RecentJob[]>(loadRecent);
  const [highlight, setHighlight] = useState<string | null>(null);
  const [inspections, setInspections] = useState<InspectionEntry[]>([]);
  const [needKey, setNeedKey] = useState(false);
  const askForKey = useCallback(() => setNeedKey(true), []);
  const entriesRef = useRef(entries);
  entriesRef.current = entries;

  useEffect(() => saveRecent(recent), [recent]);

  const update = useCallback((key: string, patch: Partial<Entry>) => {
    setEntries((list) => list.map((e) => (e.key === key ? { ...e, ...patch } : e)));
  }, []);

  const submit = useCallback(
    async (key: string, file: Blob, filename: string, modelName: string) => {
      update(key, { phase: 'uploading', uploadError: undefined });
      try {
        const res = await submitJob(file, filename, modelName);
        update(key, { phase: 'submitted', jobId: res.id });
        setRecent((r) => upsertRecent(r, { id: res.id, filename, model: modelName, createdAt: new Date().toISOString(), status: res.status }));
      } catch (err) {
        const error = toApiError(err);
        if (error.status === 401) setNeedKey(true);
        update(key, { phase: 'rejected', uploadError: error.toInfo() });
      }
    },
    [update],
  );

  /** Two or more photos at once become one inspection (one job each, one report). */
  const submitBatch = useCallback(
    async (batch: Entry[], modelName: string) => {
      try {
        const res = await submitInspection(
          batch.map((e) => ({ file: e.file!, filename: e.filename })),
          modelName,
        );
        setInspections((list) => [{ id: res.id, photos: res.jobs.length, rejected: res.jobs.filter((j) => !j.job_id).length }, ...list]);
        res.jobs.forEach((photo, i) => {
          const entry = batch[i];
          if (photo.job_id) {
            update(entry.key, { phase: 'submitted', jobId: photo.job_id });
            setRecent((r) =>
              upsertRecent(r, { id: photo.job_id!, filename: entry.filename, model: modelName, createdAt: new Date().toISOString(), status: photo.status }),
            );
          } else {
            update(entry.key, { phase: 'rejected', uploadError: photo.error ?? { code: 'failed', message: 'The photo was not accepted.' } });
          }
        });
      } catch (err) {
        const error = toApiError(err);
        if (error.status === 401) setNeedKey(true);
        batch.forEach((entry, i) => {
          // 422 no_valid_photos says why each photo was refused: show that, not the same line on every card
          const own = error.photos?.find((p) => p.index === i)?.error;
          update(entry.key, { phase: 'rejected', uploadError: own ?? error.toInfo() });
        });
      }
    },
    [update],
  );

  const addFiles = useCallback(
    (files: File[]) => {
      const fresh: Entry[] = files.map((file) => {
        const problem = validateFile(file, models.limits);
        return {
          key: newKey(),
          filename: file.name || 'pasted-image',
          model,
          file,
          thumbUrl: problem ? undefined : URL.createObjectURL(file),
          phase: problem ? 'rejected' : 'uploading',
          uploadError: problem ? { ...problem, clientSide: true } : undefined,
        };
      });
      setEntries((list) => [...fresh, ...list]);
      const valid = fresh.filter((e) => e.phase === 'uploading');
      if (valid.length >= 2) void submitBatch(valid, model);
      else for (const e of valid) void submit(e.key, e.file!, e.filename, e.model);
    },
    [models.limits, model, submit, submitBatch],
  );

  const retry = useCallback(
    async (entry: Entry) => {
      let file = entry.file;
      if (!file && entry.jobId) {
        update(entry.key, { phase: 'uploading', uploadError: undefined });
        try {
          file = await fetchInput(entry.jobId);
        } catch (err) {
          update(entry.key, { phase: 'rejected', uploadError: toApiError(err).toInfo() });
          return;
        }
        update(entry.key, { file });
      }
      if (file) void submit(entry.key, file, entry.filename || 'photo', entry.model || model);
    },
    [submit, update, model],
  );

  const remove = useCallback((entry: Entry) => {
    if (entry.thumbUrl) URL.revokeObjectURL(entry.thumbUrl);
    setEntries((list) => list.filter((e) => e.key !== entry.key));
    if (entry.jobId && window.location.hash === jobHash(entry.jobId)) {
      history.replaceState(null, '', '#/');
      window.dispatchEvent(new HashChangeEvent('hashchange')); // replaceState fires none: the link must open the job again
    }
  }, []);

  const onJobUpdate = useCallback((job: Job) => {
    setRecent((r) =>
      upsertRecent(
        r,
        {
          id: job.id,
          status: job.status,
          label: job.results?.classification?.label,
          filename: job.input?.filename || r.find((x) => x.id === job.id)?.filename,
          model: job.model,
        },
        false,
      ),
    );
  }, []);

  // Show the job named in the URL hash (opening `/#/jobs/{id}` reopens it).
  const openJob = useCallback(
    (id: string) => {
      const existing = entriesRef.current.find((e) => e.jobId === id);
      const key = existing?.key ?? newKey();
      if (!existing) {
        const known = recent.find((r) => r.id === id);
        setEntries((list) => [{ key, jobId: id, filename: known?.filename ?? '', model: known?.model ?? '', phase: 'submitted' }, ...list]);
      }
      setHighlight(key);
      requestAnimationFrame(() => {
        const el = document.getElementById(`job-${id}`);
        el?.scrollIntoView?.({ block: 'start', behavior: 'smooth' });
        el?.focus({ preventScroll: true });
      });
    },
    [recent],
  );

  useEffect(() => {
    if (hashJobId) openJob(hashJobId);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [hashJobId]);

  const openById = (id: string) => {
    if (window.location.hash === jobHash(id)) openJob(id);
    else window.location.hash = jobHash(id);
  };

  // Paste images from the clipboard anywhere on the page; drop files anywhere too.
  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const files = Array.from(e.clipboardData?.files ?? []);
      if (!files.length) return;
      e.preventDefault();
      addFiles(files);
    };
    const onDragOver = (e: DragEvent) => e.preventDefault();
    const onDrop = (e: DragEvent) => {
      if (e.defaultPrevented) return; // handled by the drop zone already
      e.preventDefault();
      const files = Array.from(e.dataTransfer?.files ?? []);
      if (files.length) addFiles(files);
    };
    document.addEventListener('paste', onPaste);
    window.addEventListener('dragover', onDragOver);
    window.addEventListener('drop', onDrop);
    return () => {
      document.removeEventListener('paste', onPaste);
      window.removeEventListener('dragover', onDragOver);
      window.removeEventListener('drop', onDrop);
    };
  }, [addFiles]);

  return (
    <>
      <a className="skip-link" href="#jobs">
        Skip to results
      </a>
      <header className="app-header">
        <div className="brand">
          <span className="logo" aria-hidden="true">
            ◎
          </span>
          <div>
            <h1>DamageLens</h1>
            <p className="muted small">Car-damage classification, Grad-CAM explanations and damage detection</p>
          </div>
        </div>
      </header>
      {!reachable && (
        <GatewayBanner
          onRecovered={() => {
            setGatewayReachable(true);
            models.reload();
          }}
        />
      )}
      <div className="layout">
        <main className="main-col">
          {needKey && (
            <ApiKeyPrompt
              onSave={(key) => {
                setApiKey(key);
                setNeedKey(false);
                for (const e of entriesRef.current) if (e.uploadError?.code === 'unauthorized') void retry(e);
              }}
            />
          )}
          <section className="card upload" aria-labelledby="upload-heading">
            <h2 id="upload-heading">Analyse photos</h2>
            <ModelPicker models={models.models} value={model} onChange={setChosenModel} loaded={models.loaded} />
            <UploadZone
              limits={models.limits}
              onFiles={(files) => {
                addFiles(files);
              }}
            />
            {models.error && !models.loaded && reachable && (
              <p className="notice small" role="status">
                Could not load the model list ({models.error.message}); using defaults.{' '}
                <button type="button" className="btn btn-ghost small" onClick={models.reload}>
                  Retry
                </button>
              </p>
            )}
          </section>
          <section id="jobs" className="jobs" aria-labelledby="jobs-heading" tabIndex={-1}>
            <h2 id="jobs-heading" className={entries.length ? '' : 'sr-only'}>
              Jobs
            </h2>
            {inspections.map((i) => (
              <InspectionBar key={i.id} inspection={i} />
            ))}
            {entries.map((e) => (
              <JobCard key={e.key} entry={e} highlighted={e.key === highlight} onRetry={retry} onRemove={remove} onJobUpdate={onJobUpdate} onUnauthorized={askForKey} />
            ))}
          </section>
        </main>
        <aside className="side-col card">
          <OpenJobForm onOpen={openById} />
          <RecentJobs jobs={recent} onClear={() => setRecent([])} onOpen={openById} />
        </aside>
      </div>
    </>
  );
}
