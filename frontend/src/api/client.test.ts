import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError, gatewayReachable, getJob, getModels, onGatewayStatus, request, setGatewayReachable, submitJob } from './client';
import { jsonResponse } from '../test/fixtures';

describe('api client error mapping', () => {
  const fetchMock = vi.fn();
  beforeEach(() => {
    vi.stubGlobal('fetch', fetchMock);
    setGatewayReachable(true);
  });
  afterEach(() => {
    fetchMock.mockReset();
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('maps the error envelope to code, message and status', async () => {
    fetchMock.mockResolvedValue(jsonResponse({ error: { code: 'upload_too_large', message: 'The upload exceeds 20 MB.' } }, 413));
    const err = await submitJob(new Blob(['x']), 'a.jpg', 'fast').catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'upload_too_large', message: 'The upload exceeds 20 MB.', status: 413 });
    expect(err.unreachable).toBe(false);
    expect(gatewayReachable()).toBe(true);
  });

  it('keeps the stage of a stage error', async () => {
    fetchMock.mockResolvedValue(jsonResponse({ error: { code: 'boom', message: 'Broke', stage: 'explain' } }, 500));
    await expect(getJob('x')).rejects.toMatchObject({ code: 'boom', stage: 'explain', status: 500 });
  });

  it('maps 404 job_not_found', async () => {
    fetchMock.mockResolvedValue(jsonResponse({ error: { code: 'job_not_found', message: 'No job nope' } }, 404));
    await expect(getJob('nope')).rejects.toMatchObject({ code: 'job_not_found', message: 'No job nope', status: 404 });
  });

  it('treats a non-JSON 502 from a proxy as an unreachable gateway', async () => {
    fetchMock.mockResolvedValue(new Response('<html>Bad Gateway</html>', { status: 502, statusText: 'Bad Gateway' }));
    const err = await getJob('x').catch((e) => e);
    expect(err).toMatchObject({ code: 'bad_gateway', message: 'Cannot reach the DamageLens gateway', status: 502 });
    expect(gatewayReachable()).toBe(false);
  });

  it('gives a generic http_<status> error for other non-JSON failures', async () => {
    fetchMock.mockResolvedValue(new Response('oops', { status: 500, statusText: 'Internal Server Error' }));
    await expect(getJob('x')).rejects.toMatchObject({ code: 'http_500', message: 'The gateway answered 500 Internal Server Error' });
  });

  it('maps a failed fetch to network_error and notifies listeners, then recovers', async () => {
    const seen: boolean[] = [];
    const off = onGatewayStatus((v) => seen.push(v));
    fetchMock.mockRejectedValueOnce(new TypeError('Failed to fetch'));
    await expect(getModels()).rejects.toMatchObject({ code: 'network_error', message: 'Cannot reach the DamageLens gateway' });
    expect(gatewayReachable()).toBe(false);
    fetchMock.mockResolvedValueOnce(jsonResponse({ default: 'fast', limits: {}, models: [] }));
    await getModels();
    expect(gatewayReachable()).toBe(true);
    expect(seen).toEqual([false, true]);
    off();
  });

  it('times out slow requests', async () => {
    vi.useFakeTimers();
    fetchMock.mockImplementation(
      (_u: string, init: RequestInit) =>
        new Promise((_res, rej) => init.signal?.addEventListener('abort', () => rej(new DOMException('aborted', 'AbortError')))),
    );
    const p = request('/v1/models', {}, { timeoutMs: 3000 }).catch((e) => e);
    await vi.advanceTimersByTimeAsync(3001);
    expect(await p).toMatchObject({ code: 'timeout', message: 'The gateway did not answer within 3 s' });
  });

  it('reports a caller abort as aborted without blaming the gateway', async () => {
    fetchMock.mockImplementation(
      (_u: string, init: RequestInit) =>
        new Promise((_res, rej) => init.signal?.addEventListener('abort', () => rej(new DOMException('aborted', 'AbortError')))),
    );
    const ctrl = new AbortController();
    const p = getJob('x', { signal: ctrl.signal }).catch((e) => e);
    ctrl.abort();
    expect(await p).toMatchObject({ code: 'aborted' });
    expect(gatewayReachable()).toBe(true);
  });

  it('submits multipart with the image and model fields', async () => {
    fetchMock.mockResolvedValue(jsonResponse({ id: 'j1', status: 'queued', links: {} }, 202));
    const res = await submitJob(new Blob(['data'], { type: 'image/png' }), 'car.png', 'fast', ['classify', 'detect']);
    expect(res.id).toBe('j1');
    const [path, init] = fetchMock.mock.calls[0];
    expect(path).toBe('/v1/jobs');
    expect(init.method).toBe('POST');
    const form = init.body as FormData;
    expect((form.get('image') as File).name).toBe('car.png');
    expect(form.get('model')).toBe('fast');
    expect(form.get('tasks')).toBe('classify,detect');
  });
});
