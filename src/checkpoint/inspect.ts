/** `evomerge inspect`: what a checkpoint holds, as a report object and as text. */
import { formatBytes, formatCount } from '../format.ts';
import { DTYPE_SIZE } from '../tensor/dtype.ts';
import { openCheckpoint, type CheckpointFormat, type LayerInfo } from './folder.ts';
import { openLoraAdapter } from './lora.ts';

export interface InspectReport {
  path: string;
  format: CheckpointFormat;
  files: string[];
  tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: number }>;
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
  layers: LayerInfo;
  config: Record<string, unknown> | null;
  lora?: { r: number; alpha: number; rslora: boolean; targets: string[] };
  warnings: string[];
}

const CONFIG_SUMMARY_KEYS = [
  'architectures', 'model_type', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
  'num_key_value_heads', 'vocab_size', 'max_position_embeddings', 'rope_theta', 'rope_scaling', 'sliding_window',
  'tie_word_embeddings', 'torch_dtype', 'r', 'lora_alpha', 'target_modules', 'base_model_name_or_path',
];

export function inspectCheckpoint(path: string): InspectReport {
  const ckpt = openCheckpoint(path);
  try {
    const tensors = ckpt.names().map((name) => {
      const info = ckpt.info(name);
      return { name, dtype: info.dtype, shape: info.shape, bytes: info.byteLength };
    });
    const dtypes: Record<string, number> = {};
    let parameters = 0;
    let bytes = 0;
    for (const t of tensors) {
      const n = t.bytes / DTYPE_SIZE[t.dtype as keyof typeof DTYPE_SIZE];
      parameters += n;
      bytes += t.bytes;
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + n;
    }
    const report: InspectReport = {
      path: ckpt.path, format: ckpt.format, files: [...ckpt.files], tensors, parameters, bytes, dtypes,
      layers: ckpt.layers, config: ckpt.config, warnings: [...ckpt.warnings],
    };
    if (ckpt.format === 'lora-adapter') {
      const lora = openLoraAdapter(path);
      report.lora = { r: lora.config.r, alpha: lora.config.lora_alpha, rslora: lora.config.use_rslora, targets: lora.targets() };
      lora.close();
    }
    return report;
  } finally {
    ckpt.close();
  }
}

export function formatInspectReport(r: InspectReport, options: { maxTensors?: number } = {}): string {
  const lines: string[] = [];
  lines.push(`${r.path}`);
  lines.push(`  format      ${r.format} (${r.files.length} safetensors file${r.files.length === 1 ? '' : 's'})`);
  lines.push(`  parameters  ${formatCount(r.parameters)} (${r.parameters.toLocaleString('en-US')}), ${formatBytes(r.bytes)}`);
  lines.push(`  dtypes      ${Object.entries(r.dtypes).map(([d, n]) => `${d}: ${n.toLocaleString('en-US')}`).join(', ')}`);
  const l = r.layers;
  lines.push(`  layers      ${l.count}${l.prefix ? ` (names under '${l.prefix}N.', found ${l.indices.length})` : ' (no layer-indexed tensor names found)'}`);
  if (r.lora) lines.push(`  lora        r=${r.lora.r} alpha=${r.lora.alpha}${r.lora.rslora ? ' rsLoRA' : ''}, updates ${r.lora.targets.length} base tensors`);
  if (r.config) {
    const summary = CONFIG_SUMMARY_KEYS.filter((k) => r.config![k] !== undefined).map((k) => `${k}=${JSON.stringify(r.config![k])}`);
    if (summary.length > 0) lines.push(`  config      ${summary.join(' ')}`);
  }
  for (const w of r.warnings) lines.push(`  warning     ${w}`);
  lines.push('');
  const max = options.maxTensors ?? Infinity;
  const shown = r.tensors.slice(0, max);
  const width = Math.min(72, Math.max(4, ...shown.map((t) => t.name.length)));
  lines.push(`  ${'name'.padEnd(width)}  dtype  ${'shape'.padEnd(16)} bytes`);
  for (const t of shown) {
    lines.push(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(5)}  ${JSON.stringify(t.shape).padEnd(16)} ${t.bytes}`);
  }
  if (shown.length < r.tensors.length) lines.push(`  ... ${r.tensors.length - shown.length} more tensors (use --all or --json)`);
  return lines.join('\n');
}
