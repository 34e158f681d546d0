#!/usr/bin/env node
/** `swiftformer <command>`: one small module per command; errors are one line and exit 1. */
import '../node/platform.js';
import { SwiftFormerError } from '../core/errors.js';
import { bench } from './bench.js';
import { classify } from './classify.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { info } from './info.js';
import { scoreCommand } from './score.js';
import { segmentCommand } from './segment.js';
import { serveCommand } from './serve.js';
import { trainCommand } from './train.js';

const commands: Record<string, { run: (argv: string[]) => Promise<void>; summary: string }> = {
  info: { run: info, summary: 'parameters, MACs and stage shapes of a model' },
  export: { run: exportCommand, summary: 'write a model (with weights) as ONNX' },
  train: { run: trainCommand, summary: 'train or fine-tune a classifier (Fashion-MNIST, IDX files, image folders) or a Semantic FPN segmenter' },
  classify: { run: classify, summary: 'top classes of image files' },
  segment: { run: segmentCommand, summary: 'semantic segmentation masks and overlays of image files (Semantic FPN)' },
  eval: { run: evalCommand, summary: 'top-1/top-5 accuracy on an ImageFolder, or mIoU on a segmentation dataset' },
  bench: { run: bench, summary: 'latency and throughput, side by side with another export' },
  score: { run: scoreCommand, summary: 'mIoU (mmsegmentation) or COCO AP (pycocotools) of prediction files' },
  serve: { run: serveCommand, summary: 'an HTTP inference server (Open Inference Protocol / KServe v2, Triton clients)' },
};

const usage = `Usage: swiftformer <command> [options]

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`).join('\n')}

Run 'swiftformer <command> --help' for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`swiftformer: unknown command '${name}'\n\n${usage}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (err) {
    if (err instanceof SwiftFormerError) {
      console.error(`swiftformer ${name}: ${err.message}`);
      return err.code === 'BAD_ARGUMENT' ? 2 : 1;
    }
    throw err;
  }
}

// A closed pipe (`swiftformer info | head`) ends the output, not the program with a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await main(process.argv.slice(2));
