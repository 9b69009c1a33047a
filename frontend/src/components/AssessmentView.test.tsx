import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { AssessmentResult } from '../api/types';
import { countByType, filterDamages } from '../lib/assessment';
import { AssessmentView } from './AssessmentView';

const box = (a: number, b: number, c: number, d: number) => [a, b, c, d] as [number, number, number, number];

const result = (damages: AssessmentResult['damages']): AssessmentResult => ({
  severity: { label: 'moderate', confidence: 0.61, probabilities: { minor: 0.14, moderate: 0.61, severe: 0.25 } },
  damages,
  counts: { dent: damages.filter((d) => d.type === 'dent').length, scratch: damages.filter((d) => d.type === 'scratch').length, broken: damages.filter((d) => d.type === 'broken').length },
  image_width: 1000,
  image_height: 500,
  image_url: '/v1/jobs/j/artifacts/assessment.jpg',
  model: 'severity+damage-types',
  model_version: '1.0.0+1.0.0',
});

const damages: AssessmentResult['damages'] = [
  { type: 'scratch', severity: 'minor', confidence: 0.5, box: box(100, 50, 300, 150) },
  { type: 'dent', severity: 'moderate', confidence: 0.8, box: box(500, 250, 1000, 500) },
  { type: 'scratch', severity: 'minor', confidence: 0.3, box: box(0, 0, 100, 100) },
];

describe('assessment helpers', () => {
  it('filters by type, highest confidence first, and counts per type', () => {
    expect(filterDamages(damages, new Set(['scratch'])).map((d) => d.confidence)).toEqual([0.5, 0.3]);
    expect(filterDamages(damages, new Set())).toEqual([]);
    expect(countByType(damages)).toEqual({ dent: 1, scratch: 2, broken: 0 });
  });
});

describe('AssessmentView', () => {
  it('shows the severity with every probability and draws typed boxes in percent', () => {
    render(<AssessmentView inputUrl="/v1/jobs/j/artifacts/input" result={result(damages)} />);
    expect(screen.getByTestId('severity-label')).toHaveTextContent('moderate');
    const rows = screen.getAllByTestId('severity-row');
    expect(rows.map((r) => r.textContent)).toEqual(['minor14.0%', 'moderate61.0%', 'severe25.0%']);
    const boxes = screen.getAllByTestId('assessment-box');
    expect(boxes).toHaveLength(3);
    expect(boxes[0].dataset.type).toBe('dent'); // highest confidence first
    expect(boxes[0].style.left).toBe('50%');
    expect(boxes[0].style.top).toBe('50%');
    expect(boxes[0].style.width).toBe('50%');
    expect(boxes[0]).toHaveTextContent('dent · moderate');
    expect(screen.getByRole('link', { name: 'Server-rendered image' })).toHaveAttribute('href', '/v1/jobs/j/artifacts/assessment.jpg');
  });

  it('hides and shows a damage type with its filter checkbox', () => {
    render(<AssessmentView inputUrl="/in" result={result(damages)} />);
    const scratch = screen.getByLabelText('scratch (2)');
    fireEvent.click(scratch);
    expect(screen.getAllByTestId('assessment-box').map((b) => b.dataset.type)).toEqual(['dent']);
    expect(screen.getAllByTestId('assessment-item')).toHaveLength(1);
    fireEvent.click(screen.getByLabelText('dent (1)'));
    expect(screen.queryAllByTestId('assessment-box')).toHaveLength(0);
    expect(screen.getByText('All 3 regions hidden by the type filter')).toBeInTheDocument();
    fireEvent.click(scratch);
    expect(screen.getAllByTestId('assessment-box')).toHaveLength(2);
  });

  it('says so when no region was found, and still shows the severity', () => {
    render(<AssessmentView inputUrl="/in" result={result([])} />);
    expect(screen.getByText('No typed damage regions found')).toBeInTheDocument();
    expect(screen.getByTestId('severity-label')).toHaveTextContent('moderate');
  });

  it('falls back to the server-rendered image when the photo cannot be displayed', () => {
    render(<AssessmentView inputUrl="/in.tiff" result={result(damages)} />);
    fireEvent.error(screen.getByAltText(/Photo with 3 typed damage regions marked/));
    expect(screen.getByAltText('Server-rendered assessment (3 regions)')).toHaveAttribute('src', '/v1/jobs/j/artifacts/assessment.jpg');
  });
});
