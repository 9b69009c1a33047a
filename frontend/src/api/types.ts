// Types mirroring docs/api.md (DamageLens HTTP API v1).

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export type StageName = 'classify' | 'explain' | 'detect' | 'assess';
export const STAGES: StageName[] = ['classify', 'explain', 'detect', 'assess'];

export interface ErrorInfo {
  code: string;
  message: string;
  stage?: string;
}

export interface ErrorEnvelope {
  error: ErrorInfo;
}

export interface JobLinks {
  self: string;
  events: string;
  input: string;
}

export interface SubmitResponse {
  id: string;
  status: JobStatus;
  links: JobLinks;
}

export interface StageState {
  status: JobStatus;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  speed_ms: Record<string, number>;
  error: ErrorInfo | null;
}

export interface JobInput {
  filename: string;
  content_type: string;
  width: number;
  height: number;
  url: string;
}

export interface Classification {
  label: string;
  confidence: number;
  probabilities: Record<string, number>;
  model: string;
  model_version: string;
  /** Confidence below the model's review threshold: a person should check this photo. */
  review?: boolean;
}

export interface Explanation {
  method: string;
  target_label: string;
  overlay_url: string;
  heatmap_url: string;
}

/** `[x1, y1, x2, y2]` */
export type Box = [number, number, number, number];

export interface Detection {
  label: string;
  confidence: number;
  box: Box;
  box_normalized?: Box;
}

export interface DetectionResult {
  detections: Detection[];
  total_detections: number;
  image_width: number;
  image_height: number;
  image_url: string;
  model: string;
  model_version: string;
}

export type DamageType = 'dent' | 'scratch' | 'broken';
export const DAMAGE_TYPES: DamageType[] = ['dent', 'scratch', 'broken'];
export type SeverityLabel = 'minor' | 'moderate' | 'severe';

export interface SeverityScore {
  label: SeverityLabel;
  confidence: number;
  probabilities: Record<string, number>;
}

export interface Damage {
  type: DamageType;
  severity: SeverityLabel;
  confidence: number;
  box: Box;
  box_normalized?: Box;
}

export interface AssessmentResult {
  severity: SeverityScore;
  damages: Damage[];
  counts: Record<DamageType, number>;
  image_width: number;
  image_height: number;
  image_url: string;
  model: string;
  model_version: string;
  /** Severity model of the region crops (`damages[].severity`); null on results stored before it was separate. */
  region_model?: string | null;
  region_model_version?: string | null;
}

export interface JobResults {
  classification?: Classification;
  explanation?: Explanation;
  detection?: DetectionResult;
  assessment?: AssessmentResult;
}

export interface Job {
  id: string;
  status: JobStatus;
  progress: number;
  model: string;
  tasks: StageName[];
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  input: JobInput | null;
  stages: Partial<Record<StageName, StageState>>;
  results: JobResults;
  error: ErrorInfo | null;
  links: JobLinks;
}

export interface Limits {
  max_upload_bytes: number;
  max_pixels: number;
  accepted_types: string[];
}

export interface ModelInfo {
  name: string;
  aliases: string[];
  task: string;
  architecture: string;
  version: string;
  trained: boolean;
  metrics: Record<string, number>;
  input_size?: number;
  labels: string[];
  description: string;
}

export interface ModelsResponse {
  default: string;
  limits: Limits;
  models: ModelInfo[];
}

export const TERMINAL: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'canceled']);
export const isTerminal = (s: JobStatus | undefined | null): boolean => !!s && TERMINAL.has(s);

export interface InspectionPhoto {
  index: number;
  filename: string;
  job_id: string | null;
  status: JobStatus;
  error: ErrorInfo | null;
}

/** The worst photo-level severity of an inspection (assess stage) and the photo that shows it. */
export interface SeverityFinding {
  label: SeverityLabel;
  confidence: number;
  photo_index: number;
  job_id: string;
  filename: string;
}

/** The part of the vehicle summary the UI shows; the gateway sends more (see VehicleSummary). */
export interface InspectionSummary {
  severity?: SeverityFinding | null;
  damage_counts?: Record<DamageType, number> | null;
  photos_assessed?: number;
  damage_regions?: number;
}

export interface Inspection {
  id: string;
  status: JobStatus;
  progress: number;
  summary: InspectionSummary;
}

export interface InspectionAccepted {
  id: string;
  status: JobStatus;
  reference: string | null;
  jobs: InspectionPhoto[];
  links: { self: string; events: string; report: string };
}
