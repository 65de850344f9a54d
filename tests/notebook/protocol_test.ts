import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import {
  createConnectionInfo,
  decodeMessage,
  DELIMITER,
  encodeMessage,
  JupyterProtocolError,
  Session,
  Signer,
} from "../../lib/notebook/protocol.ts";

const dec = new TextDecoder();

Deno.test("createConnectionInfo: distinct free ports on 127.0.0.1 and a hex key", () => {
  const info = createConnectionInfo();
  assert.equal(info.ip, "127.0.0.1");
  assert.equal(info.signature_scheme, "hmac-sha256");
  const ports = [info.shell_port, info.iopub_port, info.stdin_port, info.control_port, info.hb_port];
  assert.equal(new Set(ports).size, 5);
  for (const p of ports) assert.ok(p > 0 && p < 65536);
  assert.match(info.key, /^[0-9a-f]{64}$/);
});

Deno.test("encodeMessage: frames and signature match HMAC-SHA256 over the four JSON parts", async () => {
  const key = "secret-key";
  const signer = new Signer(key);
  const session = new Session();
  const header = session.header("execute_request");
  assert.match(header.msg_id, /^[0-9a-f-]{36}$/);
  assert.equal(header.session, session.id);
  assert.equal(header.version, "5.3");
  const frames = await encodeMessage({ header, content: { code: "1+1" } }, signer);
  assert.equal(frames.length, 6);
  assert.equal(dec.decode(frames[0]), DELIMITER);
  const parts = frames.slice(2).map((f) => dec.decode(f));
  assert.deepEqual(parts.slice(1), ["{}", "{}", '{"code":"1+1"}']);
  const expected = createHmac("sha256", key).update(parts.join("")).digest("hex");
  assert.equal(dec.decode(frames[1]), expected);
});

Deno.test("decodeMessage: verifies, keeps identities and buffers, drops bad signatures", async () => {
  const signer = new Signer("k");
  const header = new Session().header("stream");
  const frames = await encodeMessage({
    header,
    parent_header: { msg_id: "p1" },
    content: { name: "stdout", text: "hi" },
    identities: [new TextEncoder().encode("topic")],
  }, signer);
  const msg = await decodeMessage([...frames, new Uint8Array([1, 2])], signer);
  assert.ok(msg);
  assert.equal(msg.header.msg_type, "stream");
  assert.equal(msg.parent_header.msg_id, "p1");
  assert.deepEqual(msg.content, { name: "stdout", text: "hi" });
  assert.equal(dec.decode(msg.identities[0]), "topic");
  assert.deepEqual([...msg.buffers[0]!], [1, 2]);

  assert.equal(await decodeMessage(frames, new Signer("other")), null);
  const tampered = [...frames];
  tampered[5] = new TextEncoder().encode('{"name":"stdout","text":"evil"}');
  assert.equal(await decodeMessage(tampered, signer), null);
  await assert.rejects(decodeMessage([new Uint8Array([1])], signer), JupyterProtocolError);
});
