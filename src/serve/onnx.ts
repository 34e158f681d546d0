/**
 * What the server and the Triton exporter need to know of an ONNX model: its inputs and outputs
 * (name, datatype, shape with -1 for dynamic axes) and its metadata, read from the graph itself so
 * that any exported model (classification, segmentation, detection) is described the same way.
 */
import { SwiftFormerError } from '../core/errors.js';
import { decodeModel, type Message } from '../graph/proto.js';

/** Open Inference Protocol tensor datatypes. */
export type Datatype =
  | 'BOOL' | 'UINT8' | 'UINT16' | 'UINT32' | 'UINT64' | 'INT8' | 'INT16' | 'INT32' | 'INT64'
  | 'FP16' | 'FP32' | 'FP64' | 'BF16' | 'BYTES';

/** A tensor as the protocol's metadata describes it: -1 marks a dynamic axis. */
export interface TensorSpec { name: string; datatype: Datatype; shape: number[] }

export interface OnnxSignature {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  metadata: Record<string, string>;
  /**
   * Whether axis 0 of every input and output is one dynamic batch axis: dynamic everywhere, and
   * the same named axis where the graph names it. A detector's outputs are dynamic along their
   * own axis ('detections', flattened over the images), so they do not batch.
   */
  batchAxis: boolean;
}

/** ONNX TensorProto.DataType -> protocol datatype (onnx.proto's numbering). */
const ONNX_DATATYPES: Record<number, Datatype> = {
  1: 'FP32', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64', 8: 'BYTES',
  9: 'BOOL', 10: 'FP16', 11: 'FP64', 12: 'UINT32', 13: 'UINT64', 16: 'BF16',
};

function tensorSpec(value: Message, model: string): TensorSpec {
  const name = value.name as string;
  const tensor = (value.type as Message | undefined)?.tensorType as Message | undefined;
  const datatype = ONNX_DATATYPES[(tensor?.elemType as number | undefined) ?? 0];
  if (!tensor || !datatype) throw new SwiftFormerError('BAD_ARGUMENT', `${model}: '${name}' is not a tensor of a supported element type`);
  const dims = ((tensor.shape as Message | undefined)?.dim as Message[] | undefined) ?? [];
  // A named (dimParam) or unknown axis is dynamic.
  return { name, datatype, shape: dims.map((d) => (typeof d.dimValue === 'number' ? d.dimValue : -1)) };
}

/** Inputs (initializers excluded), outputs and metadata of ONNX bytes. */
export function onnxSignature(bytes: Uint8Array, name = 'ONNX model'): OnnxSignature {
  const model = decodeModel(bytes);
  const graph = model.graph as Message | undefined;
  if (!graph) throw new SwiftFormerError('BAD_ARGUMENT', `${name} has no graph`);
  const initializers = new Set(((graph.initializer as Message[] | undefined) ?? []).map((t) => t.name as string));
  const inputs = ((graph.input as Message[] | undefined) ?? []).filter((i) => !initializers.has(i.name as string));
  const outputs = (graph.output as Message[] | undefined) ?? [];
  if (inputs.length === 0 || outputs.length === 0) throw new SwiftFormerError('BAD_ARGUMENT', `${name} has no inputs or no outputs`);
  const metadata: Record<string, string> = {};
  for (const p of (model.metadataProps as Message[] | undefined) ?? []) metadata[p.key as string] = p.value as string;
  return { inputs: inputs.map((i) => tensorSpec(i, name)), outputs: outputs.map((o) => tensorSpec(o, name)), metadata, batchAxis: sharesBatchAxis([...inputs, ...outputs]) };
}

function sharesBatchAxis(values: Message[]): boolean {
  const first = values.map((v) => (((v.type as Message | undefined)?.tensorType as Message | undefined)?.shape as Message | undefined)?.dim as Message[] | undefined)
    .map((dims) => dims?.[0]);
  if (first.some((d) => d === undefined || typeof d.dimValue === 'number')) return false;
  const names = new Set(first.map((d) => d!.dimParam).filter((p): p is string => typeof p === 'string' && p !== ''));
  return names.size <= 1;
}
