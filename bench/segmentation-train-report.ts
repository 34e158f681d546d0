/**
 * The scene-set side by side in one file: our Semantic FPN run (a `swiftformer train` directory)
 * and the PyTorch reference's (bench/semfpn-torch.py --json), epoch by epoch, with the interleaved
 * throughput measurement (bench/segmentation-train.ts --json) and the machine. Prints the table the
 * README shows.
 *
 *   node --import tsx bench/segmentation-train-report.ts --data data/scenes --ours data/runs/ours --torch data/runs/torch.json
 *        --throughput bench/results/segmentation-train-throughput.json [--loadavg-ours FILE --loadavg-torch FILE]
 *        --out bench/results/segmentation-train-scenes.json
 *
 * With --out, also writes the curves beside it (the .json's name with .svg): mIoU and training loss
 * per epoch, both sides.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lineChart } from '../src/draw/svg.js';
import { writeFileAtomic } from '../src/node/files.js';
import { machine } from './machine.js';
import { benchArgs } from './args.js';

const { values } = benchArgs(import.meta.url, {
  options: {
    data: { type: 'string' }, ours: { type: 'string' }, torch: { type: 'string' }, throughput: { type: 'string' },
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

/** The scene set as generated (its dataset.json), or the counts the two runs report. */
function dataDescription(): string {
  const n = `${torch.train_images} train / ${torch.val_images} val scenes, ${torch.num_classes} classes`;
  if (!values.data) return n;
  const { args } = json(join(values.data, 'dataset.json'));
  return `${values.data}: scripts/make-scenes.ts --train ${args.train} --val ${args.val} --size ${args.size} --seed ${args.seed} (${n}, ${args.size}x${args.size})`;
}

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
  data: dataDescription(),
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
if (values.out) {
  await writeFileAtomic(values.out, `${JSON.stringify(result, null, 2)}\n`);
  const curve = (side: 'ours' | 'pytorch', f: (m: { mIoU: number; train_loss: number }) => number) =>
    epochs.flatMap((e) => (e[side] ? [[e.epoch, f(e[side]!)] as [number, number]] : []));
  const xRange: [number, number] = [1, Math.max(2, epochs.length)];
  const svg = lineChart([
    { title: 'val mIoU (%)', xLabel: 'epoch', yLabel: 'mIoU (%)', xRange, integerX: true, series: [
      { name: 'ours (ONNX Runtime)', points: curve('ours', (m) => 100 * m.mIoU) }, { name: 'PyTorch', points: curve('pytorch', (m) => 100 * m.mIoU), dash: '5,3' }] },
    { title: 'training loss', xLabel: 'epoch', yLabel: 'loss', xRange, integerX: true, series: [
      { name: 'ours (ONNX Runtime)', points: curve('ours', (m) => m.train_loss) }, { name: 'PyTorch', points: curve('pytorch', (m) => m.train_loss), dash: '5,3' }] },
  ], { title: `Semantic FPN XS on the Fashion-MNIST scenes, ours vs PyTorch (${String((result as Record<string, unknown>).cpu)}, 2 threads)` });
  const chartPath = values.out.replace(/\.json$/, '') + '.svg';
  await writeFileAtomic(chartPath, svg);
  console.log(`wrote ${values.out} and ${chartPath}`);
}
