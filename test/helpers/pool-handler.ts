/** A pool handler for tests: each task says how to behave. */
import { threadId } from 'node:worker_threads';

type Task = { kind: 'echo' | 'throw' | 'hang' | 'spin' | 'exit' | 'shared' | 'sleep'; value?: number; ms?: number };

export function createHandler(data: { shared?: Float32Array }) {
  return async (task: Task) => {
    switch (task.kind) {
      case 'echo':
        return { value: task.value, threadId };
      case 'throw':
        throw new Error(`evaluator failed on purpose (${task.value})`);
      case 'hang':
        return new Promise(() => {});
      case 'spin': {
        const end = Date.now() + 1e9;
        while (Date.now() < end) { /* a synchronous hang */ }
        return null;
      }
      case 'exit':
        process.exit(3);
      case 'sleep':
        await new Promise((r) => setTimeout(r, task.ms));
        return { threadId };
      case 'shared': {
        const arr = data.shared!;
        const seen = arr[0];
        arr[task.value!] = threadId; // visible to the owner: the memory is shared, not copied
        return { seen };
      }
    }
  };
}
