import { useId, useState } from 'react';
import { url } from '../api/client';
import type { Explanation } from '../api/types';

export function GradCamView({ inputUrl, explanation }: { inputUrl: string; explanation: Explanation }) {
  const [opacity, setOpacity] = useState(70);
  const [broken, setBroken] = useState<string | null>(null);
  const sliderId = useId();
  const method = explanation.method.toLowerCase() === 'gradcam' ? 'Grad-CAM' : explanation.method;
  return (
    <div className="gradcam">
      <div className="pair">
        <figure>
          <img src={url(inputUrl)} alt="Original photo" onError={() => setBroken('The original photo could not be displayed (your browser may not support its format).')} />
          <figcaption>Original</figcaption>
        </figure>
        <figure>
          <div className="stack">
            <img src={url(inputUrl)} alt="" aria-hidden="true" />
            <img
              className="overlay"
              data-testid="gradcam-overlay"
              src={url(explanation.overlay_url)}
              alt={`${method} overlay for ${explanation.target_label}`}
              style={{ opacity: opacity / 100 }}
              onError={() => setBroken('The overlay image could not be loaded.')}
            />
          </div>
          <figcaption>
            {method} overlay at {opacity}%
          </figcaption>
        </figure>
      </div>
      {broken && (
        <p className="notice" role="status">
          {broken}
        </p>
      )}
      <div className="control">
        <label htmlFor={sliderId}>Overlay opacity</label>
        <input id={sliderId} type="range" min={0} max={100} step={5} value={opacity} onChange={(e) => setOpacity(Number(e.target.value))} />
        <output htmlFor={sliderId}>{opacity}%</output>
      </div>
      <p className="muted small">
        Method: <strong>{method}</strong> · target class: <strong data-testid="gradcam-target">{explanation.target_label}</strong> ·{' '}
        <a href={url(explanation.heatmap_url)} target="_blank" rel="noopener noreferrer">
          Raw heatmap
        </a>
      </p>
    </div>
  );
}
