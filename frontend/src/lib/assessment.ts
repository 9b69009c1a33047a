// Assessment helpers: which damages are shown for a per-type filter, and the colour of each type.
import { DAMAGE_TYPES, type Damage, type DamageType } from '../api/types';

/** Same hues as the server-rendered assessment.jpg (damagelens.vision.assess.TYPE_COLOURS). */
export const TYPE_COLOURS: Record<DamageType, string> = { dent: '#ff8c00', scratch: '#00aaff', broken: '#dc143c' };
export const SEVERITY_ORDER = ['minor', 'moderate', 'severe'] as const;

/** Damages whose type is switched on, highest confidence first. */
export function filterDamages(damages: Damage[], shown: ReadonlySet<DamageType>): Damage[] {
  return damages.filter((d) => shown.has(d.type)).sort((a, b) => b.confidence - a.confidence);
}

/** Counts per type (from the damages themselves, so a filter summary never disagrees with the boxes). */
export function countByType(damages: Damage[]): Record<DamageType, number> {
  const out = Object.fromEntries(DAMAGE_TYPES.map((t) => [t, 0])) as Record<DamageType, number>;
  for (const d of damages) out[d.type] += 1;
  return out;
}
