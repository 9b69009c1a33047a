import { describe, expect, it } from 'vitest';
import type { Detection } from '../api/types';
import { boxToPercent, filterDetections, scaleBox } from './boxes';

describe('box scaling', () => {
  it('scales pixel boxes to the displayed size', () => {
    expect(scaleBox([100, 50, 300, 150], 1000, 500, 500, 250)).toEqual({ x: 50, y: 25, width: 100, height: 50 });
  });

  it('handles non-uniform scaling', () => {
    expect(scaleBox([0, 0, 1024, 768], 1024, 768, 320, 100)).toEqual({ x: 0, y: 0, width: 320, height: 100 });
  });

  it('clips boxes to the image and normalises reversed corners', () => {
    expect(scaleBox([-10, 700, 1100, 100], 1000, 800, 1000, 800)).toEqual({ x: 0, y: 100, width: 1000, height: 600 });
  });

  it('gives percentages of the image', () => {
    const r = boxToPercent([120.5, 80, 610.2, 400.9], 1024, 768);
    expect(r.x).toBeCloseTo(11.767, 2);
    expect(r.y).toBeCloseTo(10.417, 2);
    expect(r.width).toBeCloseTo(47.822, 2);
    expect(r.height).toBeCloseTo(41.784, 2);
  });

  it('returns an empty rect for a degenerate source size', () => {
    expect(scaleBox([1, 2, 3, 4], 0, 0, 100, 100)).toEqual({ x: 0, y: 0, width: 0, height: 0 });
  });
});

describe('threshold filtering', () => {
  const d = (confidence: number): Detection => ({ label: 'damage', confidence, box: [0, 0, 1, 1] });
  const dets = [d(0.3), d(0.9), d(0.5), d(0.25)];

  it('keeps detections at or above the threshold, highest first', () => {
    expect(filterDetections(dets, 0.5).map((x) => x.confidence)).toEqual([0.9, 0.5]);
    expect(filterDetections(dets, 0).map((x) => x.confidence)).toEqual([0.9, 0.5, 0.3, 0.25]);
    expect(filterDetections(dets, 0.95)).toEqual([]);
  });

  it('is inclusive despite float rounding (slider value / 100)', () => {
    expect(filterDetections([d(0.3)], 30 / 100)).toHaveLength(1);
  });

  it('does not mutate its input', () => {
    const copy = [...dets];
    filterDetections(dets, 0.1);
    expect(dets).toEqual(copy);
  });
});
