import type { Job, JobStatus, StageName } from '../api/types';

export const LABELS = ['Front Breakage', 'Front Crushed', 'Front Normal', 'Rear Breakage', 'Rear Crushed', 'Rear Normal'];

export function makeJob(over: Partial<Job> = {}, stageStatus: Partial<Record<StageName, JobStatus>> = {}): Job {
  const id = over.id ?? 'job123';
  const stage = (s: StageName) => ({
    status: stageStatus[s] ?? 'queued',
    attempts: 0,
    started_at: null,
    finished_at: null,
    speed_ms: {},
    error: null,
  });
  return {
    id,
    status: 'queued',
    progress: 0,
    model: 'accurate',
    tasks: ['classify', 'explain', 'detect'],
    created_at: '2026-11-27T05:40:00Z',
    updated_at: '2026-11-27T05:40:00Z',
    finished_at: null,
    input: { filename: 'car.jpg', content_type: 'image/jpeg', width: 1024, height: 768, url: `/v1/jobs/${id}/artifacts/input` },
    stages: { classify: stage('classify'), explain: stage('explain'), detect: stage('detect') },
    results: {},
    error: null,
    links: { self: `/v1/jobs/${id}`, events: `/v1/jobs/${id}/events`, input: `/v1/jobs/${id}/artifacts/input` },
    ...over,
  };
}

export const jsonResponse = (body: unknown, status = 200, statusText = 'OK') =>
  new Response(JSON.stringify(body), { status, statusText, headers: { 'Content-Type': 'application/json' } });

/** Minimal controllable EventSource stand-in. */
export class FakeEventSource {
  static instances: FakeEventSource[] = [];
  url: string;
  closed = false;
  onerror: ((ev: Event) => void) | null = null;
  private listeners: Record<string, ((ev: MessageEvent) => void)[]> = {};
  constructor(url: string) {
    this.url = url;
    FakeEventSource.instances.push(this);
  }
  addEventListener(type: string, fn: (ev: MessageEvent) => void) {
    (this.listeners[type] ??= []).push(fn);
  }
  close() {
    this.closed = true;
  }
  emit(type: string, data: unknown) {
    const ev = new MessageEvent(type, { data: typeof data === 'string' ? data : JSON.stringify(data) });
    this.listeners[type]?.forEach((fn) => fn(ev));
  }
  fail() {
    this.onerror?.(new Event('error'));
  }
}
