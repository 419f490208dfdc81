/**
 * GGUF model files: reading (v2 and v3, memory-mapped), writing (v3), and computing with their
 * weight tensors in place.
 *
 * <ul>
 *   <li>{@link io.kvcache4j.eval.gguf.GgufModel} opens a file: typed metadata getters, the tensor
 *       table ({@link io.kvcache4j.eval.gguf.GgufTensorInfo}), {@link
 *       io.kvcache4j.eval.gguf.GgufModel#weights weights(name)} as a {@link
 *       io.kvcache4j.eval.gguf.WeightMatrix} and {@link io.kvcache4j.eval.gguf.GgufModel#floats
 *       floats(name)} for small vectors such as norms. Malformed files fail with {@link
 *       io.kvcache4j.eval.gguf.GgufFormatException}.
 *   <li>{@link io.kvcache4j.eval.gguf.GgufWriter} writes files, quantizing to Q8_0 / Q4_0 with
 *       ggml's reference rounding ({@link io.kvcache4j.eval.gguf.GgmlQuants}).
 *   <li>{@link io.kvcache4j.eval.gguf.WeightMatrix} products run block by block on the stored
 *       bytes (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K) with a Vector API kernel or its scalar twin,
 *       chosen once per process by {@link io.kvcache4j.eval.gguf.WeightKernels}.
 * </ul>
 */
package io.kvcache4j.eval.gguf;
