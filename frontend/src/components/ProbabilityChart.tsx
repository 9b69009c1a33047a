import type { Classification } from '../api/types';
import { pct } from '../lib/format';

/** Horizontal bar chart of every class probability, highest first. */
export function ProbabilityChart({ probabilities, label }: { probabilities: Record<string, number>; label?: string }) {
  const rows = Object.entries(probabilities).sort((a, b) => b[1] - a[1]);
  return (
    <figure className="prob-chart">
      <figcaption className="sr-only">Probability of each damage class</figcaption>
      <ul className="prob-list">
        {rows.map(([name, p]) => {
          const top = name === label;
          return (
            <li key={name} className={top ? 'prob-row top' : 'prob-row'} data-testid="prob-row">
              <span className="prob-label">{name}</span>
              <span className="prob-track" aria-hidden="true">
                <span className="prob-bar" data-testid="prob-bar" style={{ width: `${Math.max(0, Math.min(1, p)) * 100}%` }} />
              </span>
              <span className="prob-value">{pct(p)}</span>
            </li>
          );
        })}
      </ul>
    </figure>
  );
}

export function PredictionView({ result, inferenceMs }: { result: Classification; inferenceMs?: number }) {
  return (
    <div className="prediction">
      <div className="prediction-top">
        <div>
          <div className="eyebrow">Predicted damage</div>
          <div className="prediction-label" data-testid="prediction-label">
            {result.label}
          </div>
          {result.review ? (
            <span
              className="badge badge-review"
              data-testid="needs-review"
              title="The model's confidence is below its review threshold: a person should check this photo."
            >
              Needs review
            </span>
          ) : null}
        </div>
        <div className="prediction-conf">
          <div className="eyebrow">Confidence</div>
          <div className="prediction-value">{pct(result.confidence)}</div>
        </div>
      </div>
      <ProbabilityChart probabilities={result.probabilities} label={result.label} />
      <p className="muted small">
        Model {result.model}
        {result.model_version ? ` v${result.model_version}` : ''}
        {inferenceMs !== undefined ? ` · inference ${inferenceMs.toFixed(0)} ms` : ''}
      </p>
    </div>
  );
}
