import { act, renderHook } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setGatewayReachable } from '../api/client';
import { FakeEventSource, jsonResponse, makeJob } from '../test/fixtures';
import { useJob } from './useJob';

const factory = (u: string) => new FakeEventSource(u) as unknown as EventSource;

describe('useJob', () => {
  const fetchMock = vi.fn();
  beforeEach(() => {
    vi.useFakeTimers();
    vi.stubGlobal('fetch', fetchMock);
    FakeEventSource.instances = [];
    setGatewayReachable(true);
  });
  afterEach(() => {
    fetchMock.mockReset();
    vi.unstubAllGlobals();
    vi.useRealTimers();
  });

  it('follows the SSE stream and closes it on a terminal status', () => {
    const { result } = renderHook(() => useJob('job123', { createEventSource: factory }));
    const es = FakeEventSource.instances[0];
    expect(es.url).toBe('/v1/jobs/job123/events');
    expect(result.current.transport).toBe('sse');

    act(() => es.emit('job', makeJob({ status: 'running', progress: 0.33 }, { classify: 'succeeded', explain: 'running' })));
    expect(result.current.job?.progress).toBe(0.33);
    expect(result.current.job?.stages.explain?.status).toBe('running');

    act(() => es.emit('job', makeJob({ status: 'succeeded', progress: 1 }, { classify: 'succeeded', explain: 'succeeded', detect: 'succeeded' })));
    expect(result.current.job?.status).toBe('succeeded');
    expect(result.current.transport).toBe('done');
    expect(es.closed).toBe(true);
    expect(fetchMock).not.toHaveBeenCalled();
  });

  it('falls back to polling with exponential backoff when SSE errors', async () => {
    const running = makeJob({ status: 'running', progress: 0.33 });
    fetchMock.mockImplementation(() => Promise.resolve(jsonResponse(running)));
    const { result } = renderHook(() => useJob('job123', { createEventSource: factory }));
    const es = FakeEventSource.instances[0];

    act(() => es.fail());
    expect(es.closed).toBe(true);
    expect(result.current.transport).toBe('polling');

    // Polls at +500 (new data, delay stays 500), +500 (no change -> 1000), +1000 (-> 2000), +2000 (-> 4000), +4000 (-> 5000 cap), +5000.
    const callTimes: number[] = [];
    const start = Date.now();
    fetchMock.mockImplementation(() => {
      callTimes.push(Date.now() - start);
      return Promise.resolve(jsonResponse(running));
    });
    await act(() => vi.advanceTimersByTimeAsync(500 + 500 + 1000 + 2000 + 4000 + 5000 + 5000));
    expect(callTimes).toEqual([500, 1000, 2000, 4000, 8000, 13000, 18000]);
    expect(result.current.job?.progress).toBe(0.33);

    // Finishing stops polling.
    fetchMock.mockImplementation(() => Promise.resolve(jsonResponse(makeJob({ status: 'succeeded', progress: 1 }))));
    await act(() => vi.advanceTimersByTimeAsync(5000));
    expect(result.current.job?.status).toBe('succeeded');
    expect(result.current.transport).toBe('done');
    const calls = fetchMock.mock.calls.length;
    await act(() => vi.advanceTimersByTimeAsync(30000));
    expect(fetchMock.mock.calls.length).toBe(calls);
  });

  it('resets the backoff when a poll brings new data', async () => {
    let progress = 0;
    const times: number[] = [];
    const start = Date.now();
    fetchMock.mockImplementation(() => {
      times.push(Date.now() - start);
      progress += 0.1;
      return Promise.resolve(jsonResponse(makeJob({ status: 'running', progress })));
    });
    renderHook(() => useJob('job123', { createEventSource: factory }));
    act(() => FakeEventSource.instances[0].fail());
    await act(() => vi.advanceTimersByTimeAsync(2000));
    expect(times).toEqual([500, 1000, 1500, 2000]);
  });

  it('keeps polling through network errors, reporting them, and recovers', async () => {
    fetchMock.mockRejectedValue(new TypeError('Failed to fetch'));
    const { result } = renderHook(() => useJob('job123', { createEventSource: factory }));
    act(() => FakeEventSource.instances[0].fail());
    await act(() => vi.advanceTimersByTimeAsync(500));
    expect(result.current.error?.code).toBe('network_error');
    expect(result.current.error?.message).toBe('Cannot reach the DamageLens gateway');
    fetchMock.mockResolvedValue(jsonResponse(makeJob({ status: 'running' })));
    await act(() => vi.advanceTimersByTimeAsync(1000));
    expect(result.current.error).toBeNull();
    expect(result.current.job?.status).toBe('running');
  });

  it('stops on job_not_found', async () => {
    fetchMock.mockResolvedValue(jsonResponse({ error: { code: 'job_not_found', message: 'No such job' } }, 404));
    const { result } = renderHook(() => useJob('gone', { createEventSource: factory }));
    act(() => FakeEventSource.instances[0].fail());
    await act(() => vi.advanceTimersByTimeAsync(500));
    expect(result.current.error?.code).toBe('job_not_found');
    expect(result.current.transport).toBe('done');
    await act(() => vi.advanceTimersByTimeAsync(20000));
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });

  it('polls straight away when there is no EventSource', async () => {
    fetchMock.mockResolvedValue(jsonResponse(makeJob({ status: 'succeeded', progress: 1 })));
    const { result } = renderHook(() => useJob('job123', { createEventSource: null }));
    expect(result.current.transport).toBe('polling');
    await act(() => vi.advanceTimersByTimeAsync(0));
    expect(result.current.job?.status).toBe('succeeded');
    expect(FakeEventSource.instances).toHaveLength(0);
  });

  it('switches to polling if the stream never delivers a first message', async () => {
    fetchMock.mockResolvedValue(jsonResponse(makeJob({ status: 'running' })));
    const { result } = renderHook(() => useJob('job123', { createEventSource: factory, sseFirstMessageTimeoutMs: 3000 }));
    await act(() => vi.advanceTimersByTimeAsync(3000));
    expect(FakeEventSource.instances[0].closed).toBe(true);
    expect(result.current.transport).toBe('polling');
    await act(() => vi.advanceTimersByTimeAsync(500));
    expect(result.current.job?.status).toBe('running');
  });

  it('closes the stream on unmount', () => {
    const { unmount } = renderHook(() => useJob('job123', { createEventSource: factory }));
    unmount();
    expect(FakeEventSource.instances[0].closed).toBe(true);
  });
});
