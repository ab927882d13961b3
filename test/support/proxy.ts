import { createServer, type IncomingMessage, type Server } from "node:http";
import { connect, type Socket } from "node:net";

/** A minimal HTTP CONNECT proxy on loopback that counts the tunnels it opens. */
export class ConnectProxy {
  readonly targets: string[] = [];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  port = 0;

  constructor() {
    this.#server = createServer((_req, res) => {
      res.writeHead(405).end();
    });
    this.#server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
      const target = req.url ?? "";
      this.targets.push(target);
      const at = target.lastIndexOf(":");
      const upstream = connect(Number(target.slice(at + 1)), target.slice(0, at), () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        if (head.length > 0) upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => {
          client.destroy();
          upstream.destroy();
        });
      }
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("proxy has no port");
    this.port = address.port;
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
