import type { ModelInfo } from '../api/types';
import { metricName, metricValue } from '../lib/format';

interface Props {
  models: ModelInfo[];
  value: string;
  onChange: (name: string) => void;
  loaded: boolean;
}

export function ModelPicker({ models, value, onChange, loaded }: Props) {
  return (
    <fieldset className="models">
      <legend>Model</legend>
      <div className="model-options">
        {models.map((m) => (
          <label key={m.name} className={`model-option${m.name === value ? ' selected' : ''}`}>
            <input type="radio" name="model" value={m.name} checked={m.name === value} onChange={() => onChange(m.name)} />
            <span className="model-body">
              <span className="model-name">
                {m.name}
                {m.aliases?.length ? <span className="muted small"> ({m.aliases.join(', ')})</span> : null}
                {loaded &&
                  (m.trained ? (
                    <span className="chip chip-ok">trained</span>
                  ) : (
                    <span className="chip chip-warn" title="This model has not been trained: predictions are not meaningful">
                      untrained
                    </span>
                  ))}
              </span>
              {m.description && <span className="model-desc small">{m.description}</span>}
              {loaded && Object.keys(m.metrics ?? {}).length > 0 && (
                <span className="model-metrics small">
                  {Object.entries(m.metrics).map(([k, v]) => (
                    <span key={k}>
                      {metricName(k)} <strong>{metricValue(v)}</strong>
                    </span>
                  ))}
                </span>
              )}
            </span>
          </label>
        ))}
      </div>
    </fieldset>
  );
}
