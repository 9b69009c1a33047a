// Detection box geometry: scale gateway pixel boxes to whatever size the photo is displayed at.
import type { Box, Detection } from '../api/types';

export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

/** Scale `[x1,y1,x2,y2]` in pixels of a `srcW`×`srcH` image to a `dstW`×`dstH` display, clipped to it. */
export function scaleBox(box: Box, srcW: number, srcH: number, dstW: number, dstH: number): Rect {
  if (srcW <= 0 || srcH <= 0) return { x: 0, y: 0, width: 0, height: 0 };
  const sx = dstW / srcW;
  const sy = dstH / srcH;
  const x1 = clamp(Math.min(box[0], box[2]), 0, srcW) * sx;
  const y1 = clamp(Math.min(box[1], box[3]), 0, srcH) * sy;
  const x2 = clamp(Math.max(box[0], box[2]), 0, srcW) * sx;
  const y2 = clamp(Math.max(box[1], box[3]), 0, srcH) * sy;
  return { x: x1, y: y1, width: x2 - x1, height: y2 - y1 };
}

/** Box as percentages of the image, for absolutely positioned overlays that follow responsive layout. */
export function boxToPercent(box: Box, srcW: number, srcH: number): Rect {
  return scaleBox(box, srcW, srcH, 100, 100);
}

/** Detections at or above `threshold` (0..1), highest confidence first. */
export function filterDetections(detections: Detection[], threshold: number): Detection[] {
  return detections.filter((d) => d.confidence >= threshold - 1e-9).sort((a, b) => b.confidence - a.confidence);
}
