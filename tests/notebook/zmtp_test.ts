import assert from "node:assert/strict";
import { ZmtpError, ZmtpSocket } from "../../lib/notebook/zmtp.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads exactly n bytes from a server-side connection. */
async function readN(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const got = await conn.read(out.subarray(at));
    assert.notEqual(got, null, "client closed early");
    at += got!;
  }
  return out;
}

/** Writes bytes one at a time, to exercise partial reads on the client. */
async function dribble(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let i = 0; i < bytes.length; i++) await conn.write(bytes.subarray(i, i + 1));
}

function frame(body: Uint8Array, flags: number): Uint8Array {
  const long = body.length > 255;
  const head = long ? new Uint8Array(9) : new Uint8Array(2);
  head[0] = flags | (long ? 2 : 0);
  if (long) new DataView(head.buffer).setBigUint64(1, BigInt(body.length));
  else head[1] = body.length;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

function ready(socketType: string): Uint8Array {
  const name = enc.encode("READY");
  const key = enc.encode("Socket-Type");
  const value = enc.encode(socketType);
  const body = new Uint8Array(1 + name.length + 1 + key.length + 4 + value.length);
  let at = 0;
  body[at++] = name.length;
  body.set(name, at);
  at += name.length;
  body[at++] = key.length;
  body.set(key, at);
  at += key.length;
  new DataView(body.buffer).setUint32(at, value.length);
  body.set(value, at + 4);
  return frame(body, 4);
}

function serverGreeting(mechanism = "NULL"): Uint8Array {
  const g = new Uint8Array(64);
  g[0] = 0xff;
  g[9] = 0x7f;
  g[10] = 3;
  g[11] = 1;
  g.set(enc.encode(mechanism), 12);
  g[32] = 1;
  return g;
}

/** Reads one frame sent by the client. */
async function readFrame(conn: Deno.Conn): Promise<{ flags: number; body: Uint8Array }> {
  const [flags] = await readN(conn, 1);
  let size: number;
  if (flags! & 2) size = Number(new DataView((await readN(conn, 8)).buffer).getBigUint64(0));
  else size = (await readN(conn, 1))[0]!;
  return { flags: flags!, body: size ? await readN(conn, size) : new Uint8Array() };
}

Deno.test("ZmtpSocket: handshake, multipart send/receive across 1-byte reads and long frames", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const long = enc.encode("y".repeat(70_000));
  const server = (async () => {
    const conn = await listener.accept();
    try {
      const greeting = await readN(conn, 64);
      assert.equal(greeting[0], 0xff);
      assert.equal(greeting[9], 0x7f);
      assert.deepEqual([greeting[10], greeting[11]], [3, 0]);
      assert.equal(dec.decode(greeting.subarray(12, 16)), "NULL");
      assert.equal(greeting[32], 0);
      await dribble(conn, serverGreeting());
      const r = await readFrame(conn);
      assert.equal(r.flags, 4);
      const text = dec.decode(r.body);
      assert.ok(text.includes("READY") && text.includes("Socket-Type") && text.includes("DEALER"));
      assert.ok(text.includes("Identity") && text.includes("me-1"));
      await dribble(conn, ready("ROUTER"));
      // A PING command to be skipped, then a 3-part message with a long frame, dribbled.
      await dribble(conn, frame(enc.encode("\x04PING\x00\x00"), 4));
      await dribble(
        conn,
        new Uint8Array([...frame(enc.encode("a"), 1), ...frame(long, 1), ...frame(new Uint8Array(), 0)]),
      );
      // Read the client's message: two frames, MORE on the first.
      const f1 = await readFrame(conn);
      const f2 = await readFrame(conn);
      assert.equal(f1.flags, 1);
      assert.equal(dec.decode(f1.body), "hello");
      assert.equal(f2.flags & 1, 0);
      assert.equal(f2.body.length, 300);
    } finally {
      conn.close();
    }
  })();
  const socket = await ZmtpSocket.connect({
    hostname: "127.0.0.1",
    port,
    socketType: "DEALER",
    identity: enc.encode("me-1"),
  });
  try {
    assert.equal(socket.peerType, "ROUTER");
    const msg = await socket.receive();
    assert.ok(msg);
    assert.equal(msg.length, 3);
    assert.equal(dec.decode(msg[0]), "a");
    assert.deepEqual(msg[1], long);
    assert.equal(msg[2]!.length, 0);
    await socket.send([enc.encode("hello"), new Uint8Array(300)]);
    await server;
    assert.equal(await socket.receive(), null, "end of stream reads as null");
  } finally {
    socket.close();
    listener.close();
  }
});

Deno.test("ZmtpSocket: SUB subscribes with a 0x01-prefixed message", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const server = (async () => {
    const conn = await listener.accept();
    try {
      await readN(conn, 64);
      await conn.write(serverGreeting());
      await readFrame(conn);
      await conn.write(ready("PUB"));
      const sub = await readFrame(conn);
      assert.equal(sub.flags, 0);
      assert.deepEqual([...sub.body], [1]);
    } finally {
      conn.close();
    }
  })();
  const socket = await ZmtpSocket.connect({ hostname: "127.0.0.1", port, socketType: "SUB" });
  try {
    await socket.subscribe("");
    await server;
  } finally {
    socket.close();
    listener.close();
  }
});

Deno.test("ZmtpSocket: rejects a CURVE peer and an incompatible socket type", async () => {
  for (
    const [mechanism, peer, pattern] of [["CURVE", "ROUTER", /CURVE/], [
      "NULL",
      "PUB",
      /PUB socket, incompatible with DEALER/,
    ]] as const
  ) {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const server = (async () => {
      const conn = await listener.accept();
      try {
        await readN(conn, 64);
        await conn.write(serverGreeting(mechanism));
        if (mechanism === "NULL") {
          await readFrame(conn);
          await conn.write(ready(peer));
        }
        await conn.read(new Uint8Array(16)).catch(() => null);
      } finally {
        conn.close();
      }
    })();
    await assert.rejects(
      ZmtpSocket.connect({ hostname: "127.0.0.1", port, socketType: "DEALER" }),
      (err: Error) =>
        err instanceof ZmtpError && pattern.test(err.message) && err.message.includes(`${port}`),
    );
    await server;
    listener.close();
  }
});
