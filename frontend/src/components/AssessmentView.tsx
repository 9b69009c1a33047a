import { useMemo, useState } from 'react';
import { url } from '../api/client';
import { DAMAGE_TYPES, type AssessmentResult, type DamageType } from '../api/types';
import { SEVERITY_ORDER, TYPE_COLOURS, countByType, filterDamages } from '../lib/assessment';
import { boxToPercent } from '../lib/boxes';
import { pct } from '../lib/format';

/** Typed damage regions over the photo (with a per-type filter) and the photo's severity with its probabilities. */
export function AssessmentView({ inputUrl, result }: { inputUrl: string; result: AssessmentResult }) {
  const [shown, setShown] = useState<ReadonlySet<DamageType>>(() => new Set(DAMAGE_TYPES));
  const [broken, setBroken] = useState(false);
  const all = result.damages ?? [];
  const visible = useMemo(() => filterDamages(all, shown), [all, shown]);
  const counts = useMemo(() => countByType(all), [all]);
  const toggle = (t: DamageType) =>
    setShown((prev) => {
      const next = new Set(prev);
      if (next.has(t)) next.delete(t);
      else next.add(t);
      return next;
    });
  const sev = result.severity;

  return (
    <div className="assessment" data-testid="assessment">
      <div className="severity-head">
        <div>
          <div className="eyebrow">Severity</div>
          <div className={`severity-label severity-${sev.label}`} data-testid="severity-label">
            {sev.label}
          </div>
        </div>
        <div className="prediction-conf">
          <div className="eyebrow">Confidence</div>
          <div className="prediction-value">{pct(sev.confidence)}</div>
        </div>
      </div>
      <ul className="prob-list" aria-label="Severity probabilities">
        {SEVERITY_ORDER.map((name) => {
          const p = sev.probabilities[name] ?? 0;
          return (
            <li key={name} className={name === sev.label ? 'prob-row top' : 'prob-row'} data-testid="severity-row">
              <span className="prob-label">{name}</span>
              <span className="prob-track" aria-hidden="true">
                <span className="prob-bar" style={{ width: `${Math.max(0, Math.min(1, p)) * 100}%` }} />
              </span>
              <span className="prob-value">{pct(p)}</span>
            </li>
          );
        })}
      </ul>

      <fieldset className="type-filter">
        <legend className="eyebrow">Damage types</legend>
        {DAMAGE_TYPES.map((t) => (
          <label key={t} className="type-toggle">
            <input type="checkbox" checked={shown.has(t)} onChange={() => toggle(t)} />
            <span className="type-swatch" style={{ background: TYPE_COLOURS[t] }} aria-hidden="true" />
            {t} ({counts[t]})
          </label>
        ))}
      </fieldset>

      {broken ? (
        <figure>
          <img src={url(result.image_url)} alt={`Server-rendered assessment (${all.length} regions)`} />
          <figcaption>Your browser cannot display the original format; showing the server-rendered image.</figcaption>
        </figure>
      ) : (
        <div className="det-stage">
          <img
            src={url(inputUrl)}
            alt={`Photo with ${visible.length} typed damage region${visible.length === 1 ? '' : 's'} marked`}
            onError={() => setBroken(true)}
          />
          <div className="det-boxes" aria-hidden="true">
            {visible.map((d, i) => {
              const r = boxToPercent(d.box, result.image_width, result.image_height);
              return (
                <div
                  key={i}
                  className="det-box"
                  data-testid="assessment-box"
                  data-type={d.type}
                  style={{ left: `${r.x}%`, top: `${r.y}%`, width: `${r.width}%`, height: `${r.height}%`, borderColor: TYPE_COLOURS[d.type] }}
                >
                  <span className="det-tag" style={{ background: TYPE_COLOURS[d.type] }}>
                    {d.type} · {d.severity}
                  </span>
                </div>
              );
            })}
          </div>
        </div>
      )}

      <div aria-live="polite">
        {all.length === 0 ? (
          <p className="empty">No typed damage regions found</p>
        ) : visible.length === 0 ? (
          <p className="empty">All {all.length} regions hidden by the type filter</p>
        ) : (
          <ol className="det-list">
            {visible.map((d, i) => (
              <li key={i} data-testid="assessment-item">
                <span className="det-index" style={{ background: TYPE_COLOURS[d.type] }}>
                  {i + 1}
                </span>
                <span className="det-name">{d.type}</span>
                <span className={`severity-chip severity-${d.severity}`}>{d.severity}</span>
                <span className="det-conf">{pct(d.confidence)}</span>
              </li>
            ))}
          </ol>
        )}
      </div>
      <p className="muted small">
        {result.model}
        {result.model_version ? ` v${result.model_version}` : ''} ·{' '}
        <a href={url(result.image_url)} target="_blank" rel="noopener noreferrer">
          Server-rendered image
        </a>
      </p>
    </div>
  );
}
