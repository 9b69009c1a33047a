import { act, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { App } from './App';
import { setGatewayReachable } from './api/client';
import { loadRecent } from './lib/recentJobs';
import { FakeEventSource, jsonResponse, LABELS, makeJob } from './test/fixtures';

const MODELS = {
  default: 'fast',
  limits: { max_upload_bytes: 1000, max_pixels: 40000000, accepted_types: ['image/jpeg', 'image/png'] },
  models: [
    { name: 'fast', aliases: ['resnet'], task: 'classify', architecture: 'resnet', version: '1', trained: true, metrics: { cv_accuracy: 0.64 }, labels: LABELS, description: 'Quick one' },
    { name: 'accurate', aliases: ['fusion'], task: 'classify', architecture: 'fusion', version: '1', trained: false, metrics: {}, labels: LABELS, description: 'Slow one' },
    { name: 'detector', aliases: [], task: 'detect', architecture: 'yolo', version: '1', trained: true, metrics: {}, labels: ['damage'], description: '' },
  ],
};

type Route = (init: RequestInit | undefined) => Response | Promise<Response>;

describe('App', () => {
  let routes: Record<string, Route>;
  const fetchMock = vi.fn((input: string, init?: RequestInit) => {
    const key = `${init?.method ?? 'GET'} ${input}`;
    const r = routes[key];
    return r ? Promise.resolve(r(init)) : Promise.resolve(jsonResponse({ error: { code: 'not_found', message: key } }, 404));
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
  });
  afterEach(() => {
    fetchMock.mockClear();
    vi.unstubAllGlobals();
  });

  const upload = (files: File[]) => fireEvent.change(screen.getByLabelText('Choose photos to analyse'), { target: { files } });
  const jpeg = (name = 'car.jpg', size = 10) => new File([new Uint8Array(size)], name, { type: 'image/jpeg' });

  it('lists classify models from /v1/models with the server default selected', async () => {
    render(<App />);
    const fast = await screen.findByRole('radio', { name: /fast/i });
    await waitFor(() => expect(fast).toBeChecked());
    expect(screen.getByRole('radio', { name: /accurate/i })).not.toBeChecked();
    expect(screen.queryByRole('radio', { name: /detector/i })).toBeNull();
    expect(screen.getByText('untrained')).toBeInTheDocument();
    expect(screen.getByText('64.0%')).toBeInTheDocument();
  });

  it('rejects bad files client-side with the server error wording and no request', async () => {
    render(<App />);
    await screen.findByText('untrained');
    upload([new File(['%PDF'], 'doc.pdf', { type: 'application/pdf' }), jpeg('huge.jpg', 5000)]);
    const alerts = await screen.findAllByRole('alert');
    expect(alerts.map((a) => a.getAttribute('data-error-code')).sort()).toEqual(['unsupported_media_type', 'upload_too_large']);
    expect(screen.getByText(/"huge.jpg" is 5 KB; the limit is 1000 B/)).toBeInTheDocument();
    expect(fetchMock.mock.calls.filter(([, i]) => i?.method === 'POST')).toHaveLength(0);
    expect(screen.queryByRole('button', { name: 'Retry' })).toBeNull();
  });

  it('shows the server error message and retries the upload', async () => {
    routes['POST /v1/jobs'] = () => jsonResponse({ error: { code: 'service_unavailable', message: 'Storage is down; nothing was enqueued.' } }, 503);
    render(<App />);
    await screen.findByText('untrained');
    upload([jpeg()]);
    expect(await screen.findByText('Storage is down; nothing was enqueued.')).toBeInTheDocument();

    routes['POST /v1/jobs'] = (init) => {
      expect((init?.body as FormData).get('model')).toBe('fast');
      return jsonResponse({ id: 'newjob', status: 'queued', links: {} }, 202);
    };
    fireEvent.click(screen.getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'newjob'));
    // saved by a passive effect after the card renders, so wait for it as line 148 does
    await waitFor(() => expect(loadRecent()[0]).toMatchObject({ id: 'newjob', filename: 'car.jpg', model: 'fast' }));
  });

  it('uploads several photos as one inspection (a job each) and shows live stage progress', async () => {
    // Issue 11: photos sent together become one inspection; each still gets its own job card.
    routes['POST /v1/inspections'] = () =>
      jsonResponse(
        {
          id: 'insp',
          status: 'queued',
          reference: null,
          jobs: ['a.jpg', 'b.jpg'].map((filename, index) => ({ index, filename, job_id: `job${index + 1}`, status: 'queued', error: null })),
          links: {},
        },
        202,
      );
    render(<App />);
    await screen.findByText('untrained');
    upload([jpeg('a.jpg'), jpeg('b.jpg')]);
    await waitFor(() => expect(FakeEventSource.instances).toHaveLength(2));
    const cards = screen.getAllByTestId('job-card');
    expect(cards).toHaveLength(2);

    const es = FakeEventSource.instances.find((e) => e.url.endsWith('/job1/events'))!;
    act(() => es.emit('job', makeJob({ id: 'job1', status: 'running', progress: 0.33 }, { classify: 'succeeded', explain: 'running' })));
    const card = screen.getAllByTestId('job-card').find((c) => c.getAttribute('data-job-id') === 'job1')!;
    expect(within(card).getByRole('progressbar')).toHaveAttribute('aria-valuenow', '33');
    expect(card.querySelector('[data-stage="classify"]')).toHaveAttribute('data-status', 'succeeded');
    expect(card.querySelector('[data-stage="explain"]')).toHaveAttribute('data-status', 'running');
    expect(card.querySelector('[data-stage="detect"]')).toHaveAttribute('data-status', 'queued');
    expect(within(card).getByRole('tab', { name: /Prediction/ })).toBeInTheDocument();
  });

  it('shows a banner when the gateway cannot be reached', async () => {
    routes['GET /v1/models'] = () => {
      throw new TypeError('Failed to fetch');
    };
    fetchMock.mockImplementationOnce(() => Promise.reject(new TypeError('Failed to fetch')));
    render(<App />);
    expect(await screen.findByTestId('gateway-banner')).toHaveTextContent('Cannot reach the DamageLens gateway');
    routes['GET /healthz'] = () => jsonResponse({ status: 'ok' });
    routes['GET /v1/models'] = () => jsonResponse(MODELS);
    fireEvent.click(within(screen.getByTestId('gateway-banner')).getByRole('button', { name: 'Retry' }));
    await waitFor(() => expect(screen.queryByTestId('gateway-banner')).toBeNull());
  });

  it('opens the job named in the URL hash', async () => {
    window.location.hash = '#/jobs/abc123';
    render(<App />);
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'abc123'));
    const es = FakeEventSource.instances[0];
    expect(es.url).toBe('/v1/jobs/abc123/events');
    act(() =>
      es.emit(
        'job',
        makeJob(
          {
            id: 'abc123',
            status: 'succeeded',
            progress: 1,
            results: { classification: { label: 'Rear Crushed', confidence: 0.7, probabilities: Object.fromEntries(LABELS.map((l) => [l, 1 / 6])), model: 'fast', model_version: '1' } },
          },
          { classify: 'succeeded', explain: 'succeeded', detect: 'succeeded' },
        ),
      ),
    );
    expect(screen.getByTestId('prediction-label')).toHaveTextContent('Rear Crushed');
    expect(screen.getAllByTestId('prob-bar')).toHaveLength(6);
    await waitFor(() => expect(loadRecent()[0]).toMatchObject({ id: 'abc123', status: 'succeeded', label: 'Rear Crushed' }));
  });

  it('opens a job typed into the id box', async () => {
    render(<App />);
    fireEvent.change(screen.getByLabelText('Open a job by id'), { target: { value: 'bad id!' } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    expect(screen.getByText(/Enter a job id/)).toBeInTheDocument();
    fireEvent.change(screen.getByLabelText('Open a job by id'), { target: { value: ' xyz789 ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Open' }));
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'xyz789'));
    expect(window.location.hash).toBe('#/jobs/xyz789');
  });
  it('uploads a photo dropped on the drop zone once (the page-wide drop handler must not add it again)', async () => {
    let posts = 0;
    routes['POST /v1/jobs'] = () => {
      posts += 1;
      return jsonResponse({ id: 'dropped', status: 'queued', links: {} }, 202);
    };
    render(<App />);
    await screen.findByText('untrained');
    fireEvent.drop(screen.getByTestId('dropzone'), { dataTransfer: { files: [jpeg()] } });
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'dropped'));
    await act(() => new Promise((r) => setTimeout(r, 50)));
    expect(posts).toBe(1);
    expect(screen.getAllByTestId('job-card')).toHaveLength(1);
  });

  it('opens a removed job again from its recent-jobs link', async () => {
    window.location.hash = '#/jobs/abc123';
    render(<App />);
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'abc123'));
    act(() => FakeEventSource.instances[0].emit('job', makeJob({ id: 'abc123', status: 'running', progress: 0.5 }, { classify: 'running' })));
    await waitFor(() => expect(within(screen.getByTestId('recent-jobs')).getByRole('link')).toBeInTheDocument());
    fireEvent.click(screen.getByRole('button', { name: /^Remove .* from the list$/ }));
    await waitFor(() => expect(screen.queryByTestId('job-card')).toBeNull());
    fireEvent.click(within(screen.getByTestId('recent-jobs')).getByRole('link'));
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'abc123'));
  });

  it('submits without a model before /v1/models answers, so the gateway default applies', async () => {
    let release: (r: Response) => void = () => {};
    routes['GET /v1/models'] = () => new Promise<Response>((resolve) => (release = resolve));
    let sent: FormDataEntryValue | null | undefined;
    routes['POST /v1/jobs'] = (init) => {
      sent = (init?.body as FormData).get('model');
      return jsonResponse({ id: 'early', status: 'queued', links: {} }, 202);
    };
    render(<App />);
    upload([jpeg()]);
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'early'));
    expect(sent).toBeNull();
    release(jsonResponse(MODELS));
  });
  it('asks for an API key when a shared job link needs one', async () => {
    routes['GET /v1/jobs/locked'] = () => jsonResponse({ error: { code: 'unauthorized', message: 'This gateway needs an API key.' } }, 401);
    window.location.hash = '#/jobs/locked';
    render(<App />);
    await waitFor(() => expect(screen.getByTestId('job-card')).toHaveAttribute('data-job-id', 'locked'));
    act(() => FakeEventSource.instances[0]?.fail());
    expect(await screen.findByText('API key required')).toBeInTheDocument();
  });
  it('shows each refused photo its own reason when no photo of an inspection could be used', async () => {
    routes['POST /v1/inspections'] = () =>
      jsonResponse(
        {
          error: {
            code: 'no_valid_photos',
            message: 'None of the photos could be used; nothing was stored.',
            photos: [
              { index: 0, filename: 'a.jpg', job_id: null, status: 'failed', error: { code: 'invalid_image', message: 'a.jpg is not a readable image.' } },
              { index: 1, filename: 'b.jpg', job_id: null, status: 'failed', error: { code: 'image_too_large', message: 'b.jpg has too many pixels.' } },
            ],
          },
        },
        422,
      );
    render(<App />);
    await screen.findByText('untrained');
    upload([jpeg('a.jpg'), jpeg('b.jpg')]);
    expect(await screen.findByText('a.jpg is not a readable image.')).toBeInTheDocument();
    expect(screen.getByText('b.jpg has too many pixels.')).toBeInTheDocument();
  });
});
