import { useId, useMemo, useState } from 'react';
import { url } from '../api/client';
import type { DetectionResult } from '../api/types';
import { boxToPercent, filterDetections } from '../lib/boxes';
import { pct } from '../lib/format';

export function DetectionView({ inputUrl, result, initialThreshold = 0 }: { inputUrl: string; result: DetectionResult; initialThreshold?: number }) {
  const [threshold, setThreshold] = useState(Math.round(initialThreshold * 100));
  const [broken, setBroken] = useState(false);
  const sliderId = useId();
  const all = result.detections ?? [];
  const visible = useMemo(() => filterDetections(all, threshold / 100), [all, threshold]);
  const total = all.length;

  return (
    <div className="detection">
      {broken ? (
        <figure>
          <img src={url(result.image_url)} alt={`Server-rendered detections (${total})`} />
          <figcaption>Your browser cannot display the original format; showing the server-rendered image.</figcaption>
        </figure>
      ) : (
        <div className="det-stage">
          <img src={url(inputUrl)} alt={`Photo with ${visible.length} damage region${visible.length === 1 ? '' : 's'} marked`} onError={() => setBroken(true)} />
          <div className="det-boxes" aria-hidden="true" data-testid="detection-boxes">
            {visible.map((d, i) => {
              const r = boxToPercent(d.box, result.image_width, result.image_height);
              return (
                <div key={i} className="det-box" data-testid="detection-box" style={{ left: `${r.x}%`, top: `${r.y}%`, width: `${r.width}%`, height: `${r.height}%` }}>
                  <span className="det-tag">
                    {i + 1} · {pct(d.confidence, 0)}
                  </span>
                </div>
              );
            })}
          </div>
        </div>
      )}
      {total > 0 && (
        <div className="control">
          <label htmlFor={sliderId}>Confidence threshold</label>
          <input id={sliderId} type="range" min={0} max={95} step={5} value={threshold} onChange={(e) => setThreshold(Number(e.target.value))} />
          <output htmlFor={sliderId}>{threshold}%</output>
        </div>
      )}
      <div data-testid="detection-list" className="det-list-wrap" aria-live="polite">
        {total === 0 ? (
          <p className="empty">No damage regions found</p>
        ) : visible.length === 0 ? (
          <p className="empty">No regions at or above {threshold}% confidence ({total} hidden)</p>
        ) : (
          <>
            <p className="muted small">
              {visible.length} of {total} region{total === 1 ? '' : 's'} shown
            </p>
            <ol className="det-list">
              {visible.map((d, i) => (
                <li key={i} data-testid="detection-item">
                  <span className="det-index">{i + 1}</span>
                  <span className="det-name">{d.label}</span>
                  <span className="det-conf">{pct(d.confidence)}</span>
                  <span className="det-coords muted small">
                    [{d.box.map((v) => Math.round(v)).join(', ')}]
                  </span>
                </li>
              ))}
            </ol>
          </>
        )}
      </div>
      <p className="muted small">
        {result.model}
        {result.model_version ? ` v${result.model_version}` : ''} · {result.image_width}×{result.image_height} px ·{' '}
        <a href={url(result.image_url)} target="_blank" rel="noopener noreferrer">
          Server-rendered image
        </a>
      </p>
    </div>
  );
}
