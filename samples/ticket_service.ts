/**
 * A replicated ticket dispenser built on distkit's `rsm` toolkit alone: the
 * complete service of the README's "Build your own service on rsm".
 *
 * Each `take` hands out the next ticket number, once: a call retried after
 * a lost reply or a new leader gets the ticket it was given the first time,
 * because `ReplicaClient.submit` stamps it with a session and the replica
 * applies it once (the default; nothing to wire). A `take` with `max` is
 * refused as "sold out" once the numbers pass it: `apply` throws, and the
 * caller gets an `ApplyError` while the cluster keeps serving. A command
 * that is not a take is refused by `validate` before it is proposed.
 *
 * `tests/rsm_service_test.ts` runs it in the randomized simulation.
 *
 * @module
 */
import {
  Replica,
  ReplicaClient,
  type ReplicaClientOptions,
  type ReplicaMachine,
  type ReplicaOptions,
  type ReplicaService,
} from "../rsm/mod.ts";
import { ArgumentsError, type Transport } from "../net/mod.ts";

/** The one command: the next ticket, unless the numbers have passed `max`. */
export interface TakeCommand {
  op: "take";
  max?: number;
}

/** The state: the next ticket number. What `apply` returns: the ticket. */
export class TicketMachine implements ReplicaMachine<number> {
  next = 1;

  /** Refuses a malformed command before it is proposed (runs on the leader). */
  validate(command: unknown): void {
    const c = command as Partial<TakeCommand> | null;
    if (typeof c !== "object" || c === null || c.op !== "take") {
      throw new ArgumentsError(`a ticket command is { op: "take", max? }`);
    }
    if (c.max !== undefined && !Number.isSafeInteger(c.max)) {
      throw new ArgumentsError(`max must be an integer, got ${c.max}`);
    }
  }

  /** Hands out the next ticket; throws (before changing anything) when sold out. */
  apply(command: unknown): number {
    // The log holds what the leader validated; check again anyway, alike everywhere.
    this.validate(command);
    const { max } = command as TakeCommand;
    if (max !== undefined && this.next > max) {
      throw new Error(`sold out: ticket ${this.next} is past ${max}`);
    }
    return this.next++;
  }

  snapshot(): Uint8Array {
    return new TextEncoder().encode(String(this.next));
  }

  restore(bytes: Uint8Array): void {
    this.next = Number(new TextDecoder().decode(bytes));
  }
}

/** The RPC methods: `Tickets.Take` (a write), `Tickets.Peek` (a read), `Tickets.Status`. */
export function ticketService(machine: TicketMachine): ReplicaService<number> {
  return {
    name: "Tickets",
    methods: (replica) => ({
      Take: (request: unknown) => replica.write(request),
      Peek: () =>
        replica.serve<{ next: number }>("reads", async () => {
          await replica.read(); // still the leader, and applied all it committed
          return { status: "ok", next: machine.next };
        }),
      Status: () => replica.status(),
    }),
  };
}

/** Starts one replica of the dispenser (the options of any Raft-backed replica). */
export async function startTicketReplica(options: ReplicaOptions): Promise<Replica<number>> {
  const machine = new TicketMachine();
  return await Replica.start(machine, { ...options, service: ticketService(machine) });
}

/** The dispenser's client. */
export class TicketClerk {
  readonly #client: ReplicaClient;

  constructor(transport: Transport, servers: string[], options: ReplicaClientOptions = {}) {
    this.#client = new ReplicaClient(transport, servers, options);
  }

  /** The next ticket (exactly once). Throws `ApplyError` when sold out. */
  take(max?: number): Promise<number> {
    return this.#client.submit<number>("Tickets.Take", { op: "take", max }, { operation: "take" });
  }

  /** The next ticket to be handed out, read linearizably. */
  async peek(): Promise<number> {
    const reply = await this.#client.call<{ next: number }>("Tickets.Peek", {}, {
      operation: "peek",
      write: false,
    });
    if (reply?.status !== "ok") throw new Error(`peek answered ${reply?.status}`);
    return reply.next;
  }
}
