/** The protobuf encoder against independent facts: protobuf's wire format, worked by hand, and a round trip through the decoder. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeMessage, encodeMessage, type Message } from '../src/graph/proto.js';

test('wire bytes worked out by hand: varints, negative int64, floats, strings, packed ints, nested messages', () => {
  // OperatorSetIdProto { domain: "ai", version: 300 }: tag 0x0a len 2 'a' 'i', tag 0x10 varint 300 = ac 02.
  assert.deepEqual([...encodeMessage({ domain: 'ai', version: 300 }, 'OperatorSetIdProto')], [0x0a, 2, 0x61, 0x69, 0x10, 0xac, 0x02]);
  // AttributeProto { name: "k", i: -1 }: -1 as int64 is ten bytes, ff ff ff ff ff ff ff ff ff 01.
  assert.deepEqual([...encodeMessage({ name: 'k', i: -1 }, 'AttributeProto')], [0x0a, 1, 0x6b, 0x18, ...Array(9).fill(0xff), 0x01]);
  // AttributeProto { f: 1.5 }: tag (2 << 3 | 5) = 0x15, then 1.5f little-endian 00 00 c0 3f.
  assert.deepEqual([...encodeMessage({ f: 1.5 }, 'AttributeProto')], [0x15, 0x00, 0x00, 0xc0, 0x3f]);
  // AttributeProto { ints: [1, 150] } packed: tag 0x42, length 3, 01 96 01.
  assert.deepEqual([...encodeMessage({ ints: [1, 150] }, 'AttributeProto')], [0x42, 3, 0x01, 0x96, 0x01]);
  // TypeProto { tensorType: { elemType: 1 } }: tag 0x0a, length 2, then the nested 08 01.
  assert.deepEqual([...encodeMessage({ tensorType: { elemType: 1 } }, 'TypeProto')], [0x0a, 2, 0x08, 0x01]);
  // A multi-byte UTF-8 name counts its bytes, not its characters.
  assert.deepEqual([...encodeMessage({ name: 'é' }, 'ValueInfoProto')], [0x0a, 2, 0xc3, 0xa9]);
});

test('a nested model round-trips, including a shared submessage and a large initializer', () => {
  const shape: Message = { dim: [{ dimParam: 'batch' }, { dimValue: 3 }, { dimValue: 1 << 20 }] };
  const raw = new Uint8Array(300_000).map((_, i) => i * 7);
  const model: Message = {
    irVersion: 8, producerName: 'swiftformer', opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [{ key: 'k', value: 'v' }],
    graph: {
      name: 'g',
      node: [{ input: ['x', 'w'], output: ['y'], opType: 'Conv', attribute: [{ name: 'pads', ints: [1, 1, -1, 0], type: 7 }] }],
      initializer: [{ name: 'w', dims: [2, 150000], dataType: 1, rawData: raw }],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1, shape } } }],
    },
  };
  const back = decodeMessage(encodeMessage(model, 'ModelProto'), 'ModelProto');
  const graph = back.graph as Message;
  assert.deepEqual((graph.node as Message[])[0]!.attribute, [{ name: 'pads', ints: [1, 1, -1, 0], type: 7 }]);
  assert.deepEqual([...((graph.initializer as Message[])[0]!.rawData as Uint8Array)], [...raw]);
  assert.deepEqual(((graph.output as Message[])[0]!.type as Message), { tensorType: { elemType: 1, shape } });
  assert.deepEqual(back.metadataProps, [{ key: 'k', value: 'v' }]);
});
