import { render, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setGatewayReachable } from '../api/client';
import type { InspectionSummary } from '../api/types';
import { jsonResponse } from '../test/fixtures';
import { InspectionBar } from './InspectionBar';

const ENTRY = { id: 'insp1', photos: 3, rejected: 0 };

const doc = (status: string, summary: InspectionSummary) => ({ id: 'insp1', status, progress: status === 'succeeded' ? 1 : 0.5, summary });

const ASSESSED: InspectionSummary = {
  severity: { label: 'severe', confidence: 0.71, photo_index: 1, job_id: 'jobB', filename: 'rear.jpg' },
  damage_counts: { dent: 2, scratch: 5, broken: 1 },
  photos_assessed: 3,
};

describe('InspectionBar vehicle severity', () => {
  const fetchMock = vi.fn();
  beforeEach(() => {
    vi.stubGlobal('fetch', fetchMock);
    setGatewayReachable(true);
  });
  afterEach(() => {
    fetchMock.mockReset();
    vi.unstubAllGlobals();
  });

  it('shows the worst severity with its photo and the typed damage counts, polling until the inspection is done', async () => {
    fetchMock
      .mockResolvedValueOnce(jsonResponse(doc('running', { severity: null, damage_counts: null, photos_assessed: 0 })))
      .mockResolvedValueOnce(jsonResponse(doc('succeeded', ASSESSED)));
    render(<InspectionBar inspection={ENTRY} pollMs={10} />);
    const line = await screen.findByTestId('vehicle-severity', {}, { timeout: 3000 });
    expect(line).toHaveTextContent('Severity severe (71%, photo 2: rear.jpg) · 2 dent · 5 scratch · 1 broken');
    expect(fetchMock.mock.calls.map(([u]) => u)).toEqual(['/v1/inspections/insp1', '/v1/inspections/insp1']);
    await new Promise((r) => setTimeout(r, 50));
    expect(fetchMock).toHaveBeenCalledTimes(2); // terminal: no more polling
    expect(screen.getByRole('link', { name: 'Download report' })).toHaveAttribute('href', '/v1/inspections/insp1/report');
  });

  it('shows no severity when no photo was assessed, and stops on 404', async () => {
    fetchMock.mockResolvedValueOnce(jsonResponse(doc('succeeded', { severity: null, damage_counts: null, photos_assessed: 0 })));
    render(<InspectionBar inspection={ENTRY} pollMs={10} />);
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(screen.queryByTestId('vehicle-severity')).toBeNull();
    expect(screen.getByTestId('inspection')).toHaveTextContent('3 photos');

    fetchMock.mockReset();
    fetchMock.mockResolvedValue(jsonResponse({ error: { code: 'inspection_not_found', message: 'No inspection' } }, 404));
    render(<InspectionBar inspection={{ ...ENTRY, id: 'gone' }} pollMs={10} />);
    await waitFor(() => expect(fetchMock).toHaveBeenCalledTimes(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(fetchMock).toHaveBeenCalledTimes(1);
  });
});
