/**
 * The scene-set side by side in one file: our Semantic FPN run (a `swiftformer train` directory)
 * and the PyTorch reference's (bench/semfpn-torch.py --json), epoch by epoch, with the interleaved
 * throughput measurement (bench/segmentation-train.ts --json) and the machine. Prints the table the
 * README shows.
 *
 *   node --import tsx bench/segmentation-train-report.ts --ours data/runs/ours --torch data/runs/torch.json
 *        --throughput bench/results/segmentation-train-throughput.json [--loadavg-ours FILE --loadavg-torch FILE]
 *        --out bench/results/segmentation-train-scenes.json
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/node/files.js';
import { machine } from './machine.js';

const { values } = parseArgs({
  options: {
    ours: { type: 'string' }, torch: { type: 'string' }, throughput: { type: 'string' },
    'loadavg-ours': { type: 'string', multiple: true }, 'loadavg-torch': { type: 'string', multiple: true }, out: { type: 'string' },
  },
});
if (!values.ours || !values.torch) throw new Error('--ours <run dir> and --torch <semfpn-torch.py --json file> are required');

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8'));
const loads = (files: string[] | undefined) => files?.map((f) => readFileSync(f, 'utf8').trim());
const oursEpochs = readFileSync(join(values.ours, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const sidecar = json(join(values.ours, 'checkpoint.json'));
const torch = json(values.torch);
const throughput = values.throughput ? json(values.throughput) : undefined;

const epochs = oursEpochs.map((m, i) => {
  const t = torch.epochs[i];
  return {
    epoch: m.epoch,
    ours: { mIoU: m.test_mIoU, aAcc: m.test_aAcc, mAcc: m.test_mAcc, train_loss: m.train_loss, img_per_s: m.img_per_s, seconds: m.seconds },
    ...(t ? { pytorch: { mIoU: t.mIoU, aAcc: t.aAcc, mAcc: t.mAcc, train_loss: t.train_loss, img_per_s: t.img_per_s, seconds: t.seconds } } : {}),
  };
});
const last = epochs.at(-1)!;
const best = (side: 'ours' | 'pytorch') => Math.max(...epochs.map((e) => e[side]?.mIoU ?? -1));
const result = {
  bench: 'segmentation-train-scenes', date: new Date().toISOString(), ...machine(),
  data: 'data/scenes (scripts/make-scenes.ts --train 2000 --val 500, 128x128, 11 classes)',
  recipe: {
    model: 'Semantic FPN XS (FPN 256, head 128, Dropout2d 0.1), backbone from assets/default/model.safetensors',
    optimizer: 'AdamW lr 2e-4, weight decay 1e-4 on every parameter', schedule: 'poly 0.9 to 0 by iteration',
    batch: sidecar.train.batchSize, epochs: sidecar.train.epochs, iterations_per_epoch: sidecar.stepsPerEpoch,
    pipeline: sidecar.train.segmentation.pipeline, loss: `cross-entropy, ignore 255, averaged over ${sidecar.train.segmentation.average} pixels`,
    threads: 2,
  },
  pytorch: { torch: torch.torch, blas: torch.blas, threads: torch.threads, backbone_init: torch.backbone_init },
  loadavg: { ours: loads(values['loadavg-ours']), pytorch: loads(values['loadavg-torch']) },
  epochs,
  final_mIoU: { ours: last.ours.mIoU, pytorch: last.pytorch?.mIoU },
  best_mIoU: { ours: best('ours'), pytorch: best('pytorch') },
  final_gap_points: last.pytorch ? 100 * (last.ours.mIoU - last.pytorch.mIoU) : undefined,
  ...(throughput ? { throughput_interleaved: { img_per_s: throughput.img_per_s, ratio: throughput.ratio_ours_over_pytorch, loadavg_before: throughput.loadavg_before, loadavg_after: throughput.loadavg_after, window: throughput.window, windows: throughput.windows } } : {}),
};
const pct = (x: number | undefined) => (x === undefined ? '-' : (100 * x).toFixed(2));
console.log('| epoch | mIoU ours | mIoU PyTorch | aAcc ours | aAcc PyTorch | img/s ours | img/s PyTorch |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
for (const e of epochs) {
  console.log(`| ${e.epoch} | ${pct(e.ours.mIoU)} | ${pct(e.pytorch?.mIoU)} | ${pct(e.ours.aAcc)} | ${pct(e.pytorch?.aAcc)} | ${e.ours.img_per_s.toFixed(2)} | ${e.pytorch?.img_per_s.toFixed(2) ?? '-'} |`);
}
if (values.out) await writeFileAtomic(values.out, `${JSON.stringify(result, null, 2)}\n`);
