import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from './App';
import { setGatewayReachable } from './api/client';
import { clearApiKey, getApiKey } from './lib/apiKey';
import { FakeEventSource, jsonResponse, LABELS } from './test/fixtures';

const MODELS = {
  default: 'fast',
  limits: { max_upload_bytes: 100000, max_pixels: 40000000, accepted_types: ['image/jpeg', 'image/png'] },
  models: [{ name: 'fast', aliases: [], task: 'classify', architecture: 'resnet', version: '1', trained: true, metrics: {}, labels: LABELS, description: '' }],
};

type Route = (init: RequestInit | undefined) => Response | Promise<Response>;

describe('several photos → one inspection; API key prompt', () => {
  let routes: Record<string, Route>;
  const fetchMock = vi.fn((input: string, init?: RequestInit) => {
    const r = routes[`${init?.method ?? 'GET'} ${input}`];
    return Promise.resolve(r ? r(init) : jsonResponse({ error: { code: 'not_found', message: input } }, 404));
  });

  beforeEach(() => {
    routes = { 'GET /v1/models': () => jsonResponse(MODELS) };
    FakeEventSource.instances = [];
    vi.stubGlobal('fetch', fetchMock);
    vi.stubGlobal('EventSource', FakeEventSource);
    URL.createObjectURL = vi.fn(() => 'blob:thumb');
    URL.revokeObjectURL = vi.fn();
    window.location.hash = '';
    setGatewayReachable(true);
    clearApiKey();
  });
  afterEach(() => {
    fetchMock.mockClear();
    vi.unstubAllGlobals();
  });

  const jpeg = (name: string) => new File([new Uint8Array(10)], name, { type: 'image/jpeg' });
  const upload = (files: File[]) => fireEvent.change(screen.getByLabelText('Choose photos to analyse'), { target: { files } });

  it('sends two photos as one inspection and offers its report', async () => {
    routes['POST /v1/inspections'] = (init) => {
      const form = init?.body as FormData;
      expect(form.getAll('images').map((f) => (f as File).name)).toEqual(['front.jpg', 'rear.jpg']);
      expect(form.get('model')).toBe('fast');
      return jsonResponse(
        {
          id: 'insp1',
          status: 'queued',
          reference: null,
          jobs: [
            { index: 0, filename: 'front.jpg', job_id: 'jobA', status: 'queued', error: null },
            { index: 1, filename: 'rear.jpg', job_id: null, status: 'failed', error: { code: 'invalid_image', message: 'rear.jpg is truncated' } },
          ],
          links: { self: '/v1/inspections/insp1', events: '/v1/inspections/insp1/events', report: '/v1/inspections/insp1/report' },
        },
        202,
      );
    };
    render(<App />);
    await screen.findByRole('radio', { name: /fast/i }, { timeout: 5000 });
    upload([jpeg('front.jpg'), jpeg('rear.jpg')]);
    const report = await screen.findByRole('link', { name: 'Download report' }, { timeout: 5000 });
    expect(report).toHaveAttribute('href', '/v1/inspections/insp1/report');
    expect(screen.getByRole('link', { name: 'PDF' })).toHaveAttribute('href', '/v1/inspections/insp1/report?format=pdf');
    expect(screen.getByTestId('inspection')).toHaveTextContent('2 photos · 1 not usable');
    await waitFor(() => expect(screen.getAllByTestId('job-card').some((c) => c.getAttribute('data-job-id') === 'jobA')).toBe(true), { timeout: 5000 });
    expect(await screen.findByText('rear.jpg is truncated', {}, { timeout: 5000 })).toBeInTheDocument();
    expect(fetchMock.mock.calls.filter(([u, i]) => u === '/v1/jobs' && i?.method === 'POST')).toHaveLength(0);
  });

  it('asks for a key on 401, keeps it for the session and sends it as a bearer token', async () => {
    routes['POST /v1/jobs'] = (init) => {
      const auth = new Headers(init?.headers).get('Authorization');
      if (auth !== 'Bearer dl_key') return jsonResponse({ error: { code: 'unauthorized', message: 'This gateway needs an API key.' } }, 401);
      return jsonResponse({ id: 'jobK', status: 'queued', links: {} }, 202);
    };
    render(<App />);
    await screen.findByRole('radio', { name: /fast/i }, { timeout: 5000 });
    upload([jpeg('car.jpg')]);
    expect(await screen.findByRole('heading', { name: 'API key required' }, { timeout: 5000 })).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText('API key'), { target: { value: 'dl_key' } });
    fireEvent.click(screen.getByRole('button', { name: 'Use key' }));
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'jobK'), { timeout: 5000 });
    expect(getApiKey()).toBe('dl_key');
    expect(screen.queryByRole('heading', { name: 'API key required' })).toBeNull();
  });
});
