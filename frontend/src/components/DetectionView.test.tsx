import { fireEvent, render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { DetectionResult } from '../api/types';
import { DetectionView } from './DetectionView';

const result = (detections: DetectionResult['detections']): DetectionResult => ({
  detections,
  total_detections: detections.length,
  image_width: 1000,
  image_height: 500,
  image_url: '/v1/jobs/j/artifacts/detection.jpg',
  model: 'detector',
  model_version: '1.0.0',
});

describe('DetectionView', () => {
  const dets = [
    { label: 'damage', confidence: 0.9, box: [100, 50, 300, 150] as [number, number, number, number] },
    { label: 'damage', confidence: 0.4, box: [500, 250, 1000, 500] as [number, number, number, number] },
  ];

  it('draws boxes scaled to the image in percent', () => {
    render(<DetectionView inputUrl="/v1/jobs/j/artifacts/input" result={result(dets)} />);
    const boxes = screen.getAllByTestId('detection-box');
    expect(boxes).toHaveLength(2);
    expect(boxes[0].style.left).toBe('10%');
    expect(boxes[0].style.top).toBe('10%');
    expect(boxes[0].style.width).toBe('20%');
    expect(boxes[0].style.height).toBe('20%');
    expect(boxes[1].style.left).toBe('50%');
    expect(boxes[1].style.width).toBe('50%');
    expect(screen.getAllByTestId('detection-item')).toHaveLength(2);
    expect(screen.getByRole('link', { name: 'Server-rendered image' })).toHaveAttribute('href', '/v1/jobs/j/artifacts/detection.jpg');
  });

  it('filters boxes and the list live with the threshold slider', () => {
    render(<DetectionView inputUrl="/in" result={result(dets)} />);
    const slider = screen.getByLabelText('Confidence threshold');
    fireEvent.change(slider, { target: { value: '50' } });
    expect(screen.getAllByTestId('detection-box')).toHaveLength(1);
    expect(screen.getAllByTestId('detection-item')).toHaveLength(1);
    expect(screen.getByText('1 of 2 regions shown')).toBeInTheDocument();
    fireEvent.change(slider, { target: { value: '95' } });
    expect(screen.queryAllByTestId('detection-box')).toHaveLength(0);
    expect(screen.getByTestId('detection-list')).toHaveTextContent('No regions at or above 95% confidence (2 hidden)');
    fireEvent.change(slider, { target: { value: '0' } });
    expect(screen.getAllByTestId('detection-item')).toHaveLength(2);
  });

  it('says so when there are no detections', () => {
    render(<DetectionView inputUrl="/in" result={result([])} />);
    expect(screen.getByTestId('detection-list')).toHaveTextContent('No damage regions found');
    expect(screen.queryByLabelText('Confidence threshold')).toBeNull();
  });

  it('falls back to the server-rendered image when the photo cannot be displayed', () => {
    render(<DetectionView inputUrl="/in.tiff" result={result(dets)} />);
    fireEvent.error(screen.getByAltText(/Photo with 2 damage regions marked/));
    expect(screen.getByAltText('Server-rendered detections (2)')).toHaveAttribute('src', '/v1/jobs/j/artifacts/detection.jpg');
  });
});
