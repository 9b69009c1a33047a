import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { PredictionView, ProbabilityChart } from './ProbabilityChart';

const probs = { 'Front Breakage': 0.81, 'Front Crushed': 0.1, 'Front Normal': 0.02, 'Rear Breakage': 0.04, 'Rear Crushed': 0.02, 'Rear Normal': 0.01 };

describe('ProbabilityChart', () => {
  it('draws one bar per class, highest first, sized by probability', () => {
    render(<ProbabilityChart probabilities={probs} label="Front Breakage" />);
    const bars = screen.getAllByTestId('prob-bar');
    expect(bars).toHaveLength(6);
    expect(bars[0].style.width).toBe('81%');
    expect(bars[1].style.width).toBe('10%');
    const rows = screen.getAllByTestId('prob-row');
    expect(within(rows[0]).getByText('Front Breakage')).toBeInTheDocument();
    expect(within(rows[0]).getByText('81.0%')).toBeInTheDocument();
    expect(rows[0]).toHaveClass('top');
    expect(rows[5]).toHaveTextContent('Rear Normal');
    expect(rows[5]).not.toHaveClass('top');
  });

  it('clamps out-of-range values', () => {
    render(<ProbabilityChart probabilities={{ a: 1.2, b: -0.1 }} />);
    const bars = screen.getAllByTestId('prob-bar');
    expect(bars[0].style.width).toBe('100%');
    expect(bars[1].style.width).toBe('0%');
  });

  it('shows the top label and confidence', () => {
    render(<PredictionView result={{ label: 'Front Breakage', confidence: 0.81, probabilities: probs, model: 'accurate', model_version: '1.0.0' }} inferenceMs={40.2} />);
    expect(screen.getByTestId('prediction-label')).toHaveTextContent('Front Breakage');
    expect(screen.getAllByText('81.0%').length).toBeGreaterThan(0);
    expect(screen.getByText(/inference 40 ms/)).toBeInTheDocument();
    expect(screen.queryByTestId('needs-review')).not.toBeInTheDocument();
  });

  it('shows "Needs review" only when the result is flagged for review', () => {
    const base = { label: 'Rear Crushed', confidence: 0.42, probabilities: probs, model: 'fast', model_version: '2.0.0' };
    const { rerender } = render(<PredictionView result={{ ...base, review: true }} />);
    expect(screen.getByTestId('needs-review')).toHaveTextContent('Needs review');
    rerender(<PredictionView result={{ ...base, confidence: 0.97, review: false }} />);
    expect(screen.queryByTestId('needs-review')).not.toBeInTheDocument();
  });
});
