import { useId, useState } from 'react';
import { url } from '../api/client';
import type { Explanation } from '../api/types';

export function GradCamView({ inputUrl, explanation }: { inputUrl: string; explanation: Explanation }) {
  const [opacity, setOpacity] = useState(70);
  const [broken, setBroken] = useState<string | null>(null);
  // The overlay is a JPEG with the photo already blended in: when the browser cannot show the
  // original (e.g. TIFF), show the overlay on its own instead of stacked over an empty box.
  const [originalBroken, setOriginalBroken] = useState(false);
  const sliderId = useId();
  const method = explanation.method.toLowerCase() === 'gradcam' ? 'Grad-CAM' : explanation.method;
  const overlayAlt = `${method} overlay for ${explanation.target_label}`;
  const overlayError = () => setBroken('The overlay image could not be loaded.');
  return (
    <div className="gradcam">
      <div className="pair">
        <figure>
          <img
            src={url(inputUrl)}
            alt="Original photo"
            onError={() => {
              setOriginalBroken(true);
              setBroken('The original photo could not be displayed (your browser may not support its format); the overlay is shown as rendered by the server.');
            }}
          />
          <figcaption>Original</figcaption>
        </figure>
        <figure>
          {originalBroken ? (
            <img data-testid="gradcam-overlay" src={url(explanation.overlay_url)} alt={overlayAlt} onError={overlayError} />
          ) : (
            <div className="stack">
              <img src={url(inputUrl)} alt="" aria-hidden="true" />
              <img
                className="overlay"
                data-testid="gradcam-overlay"
                src={url(explanation.overlay_url)}
                alt={overlayAlt}
                style={{ opacity: opacity / 100 }}
                onError={overlayError}
              />
            </div>
          )}
          <figcaption>{originalBroken ? `${method} overlay` : `${method} overlay at ${opacity}%`}</figcaption>
        </figure>
      </div>
      {broken && (
        <p className="notice" role="status">
          {broken}
        </p>
      )}
      {!originalBroken && (
        <div className="control">
          <label htmlFor={sliderId}>Overlay opacity</label>
          <input id={sliderId} type="range" min={0} max={100} step={5} value={opacity} onChange={(e) => setOpacity(Number(e.target.value))} />
          <output htmlFor={sliderId}>{opacity}%</output>
        </div>
      )}
      <p className="muted small">
        Method: <strong>{method}</strong> · target class: <strong data-testid="gradcam-target">{explanation.target_label}</strong> ·{' '}
        <a href={url(explanation.heatmap_url)} target="_blank" rel="noopener noreferrer">
          Raw heatmap
        </a>
      </p>
    </div>
  );
}
