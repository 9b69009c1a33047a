// Typed client for the DamageLens gateway. All errors are thrown as ApiError.
import { getApiKey } from '../lib/apiKey';
import type { ErrorInfo, Inspection, InspectionAccepted, Job, ModelsResponse, StageName, SubmitResponse } from './types';

const BASE: string = (import.meta.env?.VITE_API_BASE as string | undefined) ?? '';

export const GATEWAY_UNREACHABLE = 'Cannot reach the DamageLens gateway';

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  readonly stage?: string;
  /** `422 no_valid_photos`: why each photo of an inspection was refused, by its index in the request. */
  readonly photos?: { index: number; error?: ErrorInfo | null }[];
  constructor(code: string, message: string, status = 0, stage?: string, photos?: { index: number; error?: ErrorInfo | null }[]) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.stage = stage;
    this.photos = photos;
  }
  /** True when the gateway itself could not be reached (network down, timeout, proxy error). */
  get unreachable(): boolean {
    return this.code === 'network_error' || this.code === 'timeout' || this.code === 'bad_gateway';
  }
  toInfo(): ErrorInfo {
    return { code: this.code, message: this.message, ...(this.stage ? { stage: this.stage } : {}) };
  }
}

export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof Error) return new ApiError('client_error', err.message);
  return new ApiError('client_error', String(err));
}

// --- gateway reachability, shared by every request (drives the global banner) ---
type Listener = (reachable: boolean) => void;
const listeners = new Set<Listener>();
let reachable = true;
export function gatewayReachable(): boolean {
  return reachable;
}
export function setGatewayReachable(value: boolean): void {
  if (value === reachable) return;
  reachable = value;
  listeners.forEach((l) => l(value));
}
export function onGatewayStatus(l: Listener): () => void {
  listeners.add(l);
  return () => {
    listeners.delete(l);
  };
}

export const url = (path: string): string => (/^https?:/.test(path) ? path : BASE + path);

export interface RequestOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Map a non-2xx response to an ApiError, using the `{"error": {...}}` envelope when present. */
export async function errorFromResponse(res: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON: e.g. a proxy's HTML error page */
  }
  const info = (body as { error?: Partial<ErrorInfo> & { photos?: unknown } } | null)?.error;
  if (info && typeof info.code === 'string') {
    const photos = Array.isArray(info.photos) ? (info.photos as { index: number; error?: ErrorInfo | null }[]) : undefined;
    return new ApiError(info.code, info.message || info.code, res.status, info.stage, photos);
  }
  if (res.status === 502 || res.status === 504) {
    return new ApiError('bad_gateway', GATEWAY_UNREACHABLE, res.status);
  }
  return new ApiError(`http_${res.status}`, `The gateway answered ${res.status} ${res.statusText}`.trim(), res.status);
}

export async function request<T>(path: string, init: RequestInit = {}, opts: RequestOptions = {}): Promise<T> {
  const { timeoutMs = 15000, signal } = opts;
  const ctrl = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctrl.abort();
  }, timeoutMs);
  const onAbort = () => ctrl.abort();
  signal?.addEventListener('abort', onAbort);
  let res: Response;
  try {
    const key = getApiKey();
    const auth: Record<string, string> = key ? { Authorization: `Bearer ${key}` } : {};
    res = await fetch(url(path), { ...init, signal: ctrl.signal, headers: { Accept: 'application/json', ...auth, ...init.headers } });
  } catch (err) {
    if (signal?.aborted) throw new ApiError('aborted', 'Request aborted');
    if (timedOut) {
      setGatewayReachable(false);
      throw new ApiError('timeout', `The gateway did not answer within ${Math.round(timeoutMs / 1000)} s`);
    }
    setGatewayReachable(false);
    throw new ApiError('network_error', GATEWAY_UNREACHABLE);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
  if (!res.ok) {
    const e = await errorFromResponse(res);
    setGatewayReachable(!e.unreachable);
    throw e;
  }
  setGatewayReachable(true);
  try {
    return (await res.json()) as T;
  } catch {
    throw new ApiError('invalid_response', 'The gateway sent a response that is not valid JSON', res.status);
  }
}

export function getModels(opts?: RequestOptions): Promise<ModelsResponse> {
  return request<ModelsResponse>('/v1/models', {}, { timeoutMs: 10000, ...opts });
}

export function submitJob(
  file: Blob,
  filename: string,
  model?: string,
  tasks?: StageName[],
  opts?: RequestOptions,
): Promise<SubmitResponse> {
  const form = new FormData();
  form.append('image', file, filename);
  if (model) form.append('model', model);
  if (tasks?.length) form.append('tasks', tasks.join(','));
  return request<SubmitResponse>('/v1/jobs', { method: 'POST', body: form }, { timeoutMs: 120000, ...opts });
}

/** Several photos of one vehicle: one inspection, one job per photo, one report. */
export function submitInspection(files: { file: Blob; filename: string }[], model?: string, opts?: RequestOptions): Promise<InspectionAccepted> {
  const form = new FormData();
  for (const { file, filename } of files) form.append('images', file, filename);
  if (model) form.append('model', model);
  return request<InspectionAccepted>('/v1/inspections', { method: 'POST', body: form }, { timeoutMs: 300000, ...opts });
}

export function getInspection(id: string, opts?: RequestOptions): Promise<Inspection> {
  return request<Inspection>(`/v1/inspections/${encodeURIComponent(id)}`, {}, opts);
}

export function reportUrl(inspectionId: string, format: 'html' | 'pdf' = 'html'): string {
  const base = url(`/v1/inspections/${encodeURIComponent(inspectionId)}/report`);
  return format === 'pdf' ? `${base}?format=pdf` : base;
}

export function getJob(id: string, opts?: RequestOptions): Promise<Job> {
  return request<Job>(`/v1/jobs/${encodeURIComponent(id)}`, {}, opts);
}

export function cancelJob(id: string, opts?: RequestOptions): Promise<Job> {
  return request<Job>(`/v1/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' }, opts);
}

export function eventsUrl(id: string): string {
  return url(`/v1/jobs/${encodeURIComponent(id)}/events`);
}

export function inputUrl(id: string): string {
  return url(`/v1/jobs/${encodeURIComponent(id)}/artifacts/input`);
}

/** Download a job's stored input so it can be resubmitted (Retry on a reopened job). */
export async function fetchInput(id: string, opts: RequestOptions = {}): Promise<Blob> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), opts.timeoutMs ?? 60000);
  try {
    const res = await fetch(inputUrl(id), { signal: ctrl.signal });
    if (!res.ok) throw await errorFromResponse(res);
    return await res.blob();
  } catch (err) {
    if (err instanceof ApiError) throw err;
    setGatewayReachable(false);
    throw new ApiError('network_error', GATEWAY_UNREACHABLE);
  } finally {
    clearTimeout(timer);
  }
}

export function checkHealth(opts?: RequestOptions): Promise<{ status: string }> {
  return request<{ status: string }>('/healthz', {}, { timeoutMs: 5000, ...opts });
}
