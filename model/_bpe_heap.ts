/**
 * A binary min-heap of numbers in a `Float64Array`, for the BPE merge queue: keys pack
 * `rank * 2^32 + position`, so the smallest key is the lowest rank, ties to the leftmost.
 *
 * @module
 */

/**
 * Min-heap push over packed keys.
 *
 * @param heap Storage, large enough for `size + 1` keys.
 * @param size Current number of keys.
 * @param key Key to insert.
 * @returns The new size.
 */
export function heapPush(heap: Float64Array, size: number, key: number): number {
  let i = size;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= key) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = key;
  return size + 1;
}

/**
 * Min-heap pop; the caller reads the minimum, `heap[0]`, first.
 *
 * @param heap Storage.
 * @param size Current number of keys (> 0).
 * @returns The new size.
 */
export function heapPop(heap: Float64Array, size: number): number {
  const last = heap[--size];
  let i = 0;
  while (true) {
    let child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap[child + 1] < heap[child]) child++;
    if (heap[child] >= last) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = last;
  return size;
}
