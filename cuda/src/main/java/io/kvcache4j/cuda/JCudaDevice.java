package io.kvcache4j.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuCtxSynchronize;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuEventCreate;
import static jcuda.driver.JCudaDriver.cuEventDestroy;
import static jcuda.driver.JCudaDriver.cuEventRecord;
import static jcuda.driver.JCudaDriver.cuEventSynchronize;
import static jcuda.driver.JCudaDriver.cuFuncGetAttribute;
import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuLaunchKernel;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;
import static jcuda.driver.JCudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;
import static jcuda.driver.JCudaDriver.cuStreamWaitEvent;

import io.kvcache4j.api.KvDType;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUmodule;
import jcuda.driver.CUstream;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;

/**
 * A {@link Device} on the CUDA driver API through JCuda ({@code libJCudaDriver} and the driver's
 * {@code libcuda.so.1} only: no runtime, NVRTC or PTX-compiler library). The kernels are the
 * resources compiled ahead by {@code cuda/scripts/build-kernels.sh}: the {@code sm_90} cubin on a
 * compute capability 9.0 device (H100, H200), otherwise the PTX (NUL-terminated), which the driver
 * compiles for the device at load. One primary context, one non-blocking stream; every call makes the
 * context current on the calling thread, and calls are serialized on this object (see {@link Device}).
 */
public final class JCudaDevice implements Device {
    static final String RESOURCE_DIR = "/io/kvcache4j/cuda/";
    private static final int THREADS = 128;

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final CUmodule module = new CUmodule();
    private final CUstream stream = new CUstream();
    /** The transfer stream: host-to-device copies that overlap the launch stream's work. */
    private final CUstream transfers = new CUstream();

    private final java.util.Set<Ev> events = new java.util.HashSet<>();
    private final String name;
    private final String image;
    private final Map<String, CUfunction> functions = new java.util.HashMap<>();
    /** Kernels whose dynamic shared memory limit was raised above the default 48 KiB. */
    private final java.util.Set<String> dynamicShared = new java.util.HashSet<>();
    /** Allocations by base address, to rebuild {@link CUdeviceptr}s for interior addresses. */
    private final TreeMap<Long, Alloc> allocations = new TreeMap<>();

    private long allocated;
    /** Live pinned buffers (by identity) and their bytes. */
    private final Map<HostBuffer, Long> hostBuffers = new java.util.IdentityHashMap<>();

    private long hostAllocated;
    private boolean closed;

    /** A device pointer whose address Java can read. */
    private static final class Alloc extends CUdeviceptr {
        long bytes;

        long address() {
            return getNativePointer();
        }
    }

    private record Host(Pointer pointer, MemorySegment segment) implements HostBuffer {}

    private static final class Ev implements Event {
        final CUevent event = new CUevent();
    }

    /**
     * Opens device {@code ordinal} (after {@code cuInit}, see {@link CudaBackends}) and loads the kernels.
     *
     * @throws jcuda.CudaException if the driver refuses
     */
    JCudaDevice(int ordinal) {
        JCudaDriver.setExceptionsEnabled(true);
        cuDeviceGet(device, ordinal);
        byte[] raw = new byte[256];
        cuDeviceGetName(raw, raw.length, device);
        int len = 0;
        while (len < raw.length && raw[len] != 0) {
            len++;
        }
        int[] major = new int[1];
        int[] minor = new int[1];
        cuDeviceGetAttribute(major, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device);
        cuDeviceGetAttribute(minor, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        boolean cubin = major[0] == 9 && minor[0] == 0;
        byte[] bytes = cubin ? resource("kv_attention.sm_90.cubin", false) : resource("kv_attention.ptx", true);
        cuModuleLoadData(module, bytes);
        this.image = cubin ? "sm_90 cubin" : "PTX compute_90";
        cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING);
        cuStreamCreate(transfers, CUstream_flags.CU_STREAM_NON_BLOCKING);
        this.name =
                new String(raw, 0, len, StandardCharsets.UTF_8) + " (sm_" + major[0] + minor[0] + ", " + image + ")";
    }

    /** A kernel resource; PTX gets the NUL byte {@code cuModuleLoadData} needs. */
    static byte[] resource(String file, boolean nulTerminate) {
        try (InputStream in = JCudaDevice.class.getResourceAsStream(RESOURCE_DIR + file)) {
            if (in == null) {
                throw new IllegalStateException("kernel resource " + RESOURCE_DIR + file + " is missing from the jar");
            }
            byte[] b = in.readAllBytes();
            return nulTerminate ? Arrays.copyOf(b, b.length + 1) : b;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    @Override
    public synchronized String name() {
        return name;
    }

    private void current() {
        if (closed) {
            throw new IllegalStateException("device is closed");
        }
        cuCtxSetCurrent(context);
    }

    private CUfunction function(String kernel) {
        return functions.computeIfAbsent(kernel, k -> {
            CUfunction f = new CUfunction();
            cuModuleGetFunction(f, module, k);
            return f;
        });
    }

    private CUdeviceptr ptr(long address) {
        Map.Entry<Long, Alloc> e = allocations.floorEntry(address);
        if (e == null || address - e.getKey() >= e.getValue().bytes) {
            throw new IllegalArgumentException("address 0x" + Long.toHexString(address) + " is not allocated");
        }
        return address == e.getKey() ? e.getValue() : e.getValue().withByteOffset(address - e.getKey());
    }

    @Override
    public synchronized long malloc(long bytes) {
        current();
        Alloc a = new Alloc();
        cuMemAlloc(a, bytes);
        a.bytes = bytes;
        allocations.put(a.address(), a);
        allocated += bytes;
        return a.address();
    }

    @Override
    public synchronized void free(long ptr) {
        current();
        Alloc a = allocations.remove(ptr);
        if (a == null) {
            throw new IllegalArgumentException("not an allocation: 0x" + Long.toHexString(ptr));
        }
        cuCtxSynchronize();
        cuMemFree(a);
        allocated -= a.bytes;
    }

    @Override
    public synchronized long bytesAllocated() {
        return allocated;
    }

    @Override
    public synchronized HostBuffer allocHost(long bytes) {
        current();
        Pointer p = new Pointer();
        cuMemAllocHost(p, Math.max(1, bytes));
        MemorySegment seg = MemorySegment.ofBuffer(p.getByteBuffer(0, Math.max(1, bytes)));
        Host h = new Host(p, seg);
        hostBuffers.put(h, Math.max(1, bytes));
        hostAllocated += Math.max(1, bytes);
        return h;
    }

    @Override
    public synchronized void freeHost(HostBuffer buffer) {
        current();
        Long bytes = hostBuffers.remove(buffer);
        if (bytes == null) {
            throw new IllegalArgumentException("not a live pinned buffer of this device (freed already?): " + buffer);
        }
        cuCtxSynchronize();
        cuMemFreeHost(((Host) buffer).pointer());
        hostAllocated -= bytes;
    }

    @Override
    public synchronized long hostBytesAllocated() {
        return hostAllocated;
    }

    @Override
    public synchronized void copyToDevice(long dst, HostBuffer src, long srcOffset, long bytes) {
        current();
        cuMemcpyHtoDAsync(ptr(dst), ((Host) src).pointer().withByteOffset(srcOffset), bytes, stream);
    }

    @Override
    public synchronized void copyToHost(HostBuffer dst, long dstOffset, long src, long bytes) {
        current();
        cuMemcpyDtoHAsync(((Host) dst).pointer().withByteOffset(dstOffset), ptr(src), bytes, stream);
    }

    @Override
    public synchronized void copyOnDevice(long dst, long src, long bytes) {
        current();
        cuMemcpyDtoDAsync(ptr(dst), ptr(src), bytes, stream);
    }

    @Override
    public synchronized void synchronize() {
        current();
        cuStreamSynchronize(stream);
    }

    @Override
    public synchronized Event newEvent() {
        current();
        Ev e = new Ev();
        cuEventCreate(e.event, CUevent_flags.CU_EVENT_DISABLE_TIMING);
        events.add(e);
        return e;
    }

    @Override
    public synchronized void freeEvent(Event event) {
        current();
        Ev e = ev(event);
        cuEventSynchronize(e.event);
        cuEventDestroy(e.event);
        events.remove(e);
    }

    private Ev ev(Event event) {
        if (!(event instanceof Ev e) || !events.contains(e)) {
            throw new IllegalArgumentException("not a live event of this device: " + event);
        }
        return e;
    }

    @Override
    public synchronized void transferToDevice(long dst, HostBuffer src, long srcOffset, long bytes) {
        current();
        cuMemcpyHtoDAsync(ptr(dst), ((Host) src).pointer().withByteOffset(srcOffset), bytes, transfers);
    }

    @Override
    public synchronized void recordTransfer(Event event) {
        current();
        cuEventRecord(ev(event).event, transfers);
    }

    @Override
    public synchronized void awaitOnStream(Event event) {
        current();
        cuStreamWaitEvent(stream, ev(event).event, 0);
    }

    @Override
    public void awaitOnHost(Event event) {
        CUevent e;
        synchronized (this) {
            current();
            e = ev(event).event;
        }
        // outside the monitor: other threads keep queueing while this one waits
        cuEventSynchronize(e);
    }

    private static Pointer p(long v) {
        return Pointer.to(new long[] {v});
    }

    private static Pointer p(int v) {
        return Pointer.to(new int[] {v});
    }

    private static Pointer p(float v) {
        return Pointer.to(new float[] {v});
    }

    private void launch(String kernel, int gx, int gy, int gz, int threads, Pointer... args) {
        launchShared(kernel, 0, gx, gy, gz, threads, args);
    }

    private void launchShared(String kernel, int sharedBytes, int gx, int gy, int gz, int threads, Pointer... args) {
        current();
        CUfunction f = function(kernel);
        if (sharedBytes > 48 * 1024 && dynamicShared.add(kernel)) {
            cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
        }
        cuLaunchKernel(f, gx, gy, gz, threads, 1, 1, sharedBytes, stream, Pointer.to(args), null);
    }

    /**
     * Resident blocks per multiprocessor of {@code kernel} at {@code sharedBytes} of dynamic shared
     * memory, and its registers per thread (the occupancy DeviceCheck prints beside its timings).
     */
    synchronized int[] occupancy(String kernel, int sharedBytes) {
        current();
        CUfunction f = function(kernel);
        if (sharedBytes > 48 * 1024 && dynamicShared.add(kernel)) {
            cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
        }
        int[] blocks = new int[1];
        cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, f, THREADS, sharedBytes);
        int[] regs = new int[1];
        cuFuncGetAttribute(regs, CUfunction_attribute.CU_FUNC_ATTRIBUTE_NUM_REGS, f);
        return new int[] {blocks[0], regs[0]};
    }

    @Override
    public synchronized void decodeExact(
            KvDType type,
            long kvPointers,
            int kvHeads,
            long queries,
            long visible,
            long partOut,
            long partLse,
            int tokens,
            int group,
            int headDim,
            int chunk,
            int maxChunks,
            float scale) {
        KernelEmulator.checkExactChunk(chunk);
        String kernel = decodeKernel(type, group, headDim);
        launchShared(
                kernel,
                sharedBytes(kernel, group),
                maxChunks,
                kvHeads,
                tokens,
                THREADS,
                p(kvPointers),
                p(queries),
                p(visible),
                p(partOut),
                p(partLse),
                p(kvHeads),
                p(group),
                p(headDim),
                p(chunk),
                p(maxChunks),
                p(scale));
    }

    /**
     * The (group, head dimension) shapes with a kernel compiled for that shape ({@code
     * kv_decode_TYPE_gG_dD}): same arithmetic in the same order as the run-time-shaped kernel, with
     * registers and shared memory sized to the shape, so more blocks fit on a multiprocessor.
     */
    static final java.util.Set<String> FIXED_SHAPES =
            java.util.Set.of("g1_d128", "g2_d32", "g4_d64", "g4_d128", "g8_d128");

    /** Off only for DeviceCheck's benchmark, which times the general kernel beside the fixed-shape one. */
    static volatile boolean fixedShapeKernels = true;

    /**
     * The pipelined fixed-shape kernels ({@code kv_decode_TYPE_gG_d128_pN}: tiles staged through
     * shared memory by asynchronous copies in a ring of N units per warp), bit-identical to the
     * fixed-shape kernel of the same shape (checked on the GPU by DeviceCheck).
     */
    static final java.util.Set<String> PIPELINED = java.util.Set.of(
            "kv_decode_f16_g4_d128_p2",
            "kv_decode_f16_g4_d128_p3",
            "kv_decode_bf16_g4_d128_p3",
            "kv_decode_f16_g8_d128_p3",
            "kv_decode_f16_g1_d128_p3");

    /**
     * Ring depth of the pipelined kernel launched where one is compiled for the shape and type; 0
     * launches the plain fixed-shape kernel. DeviceCheck times and checks each depth.
     */
    static volatile int pipelineUnits = 3;

    /**
     * Whether {@code kv_decode_int4_g4_d128_p3} (the int4 kernel with each tile staged through shared
     * memory, bit-identical to {@code kv_decode_int4}) runs where the shape allows: group 4, head
     * dimension 128, at most {@value #INT4_PIPE_MAX_VALUE_GROUPS} value groups per token.
     */
    static volatile boolean pipelinedInt4 = true;

    static final int INT4_PIPE_MAX_VALUE_GROUPS = 8;

    /** Dynamic shared memory of {@code kv_decode_int4_g4_d128_p3} (the .cu file's int4_pipe_shared_bytes(3)). */
    static final int INT4_PIPE_SHARED =
            4 * 3 * 7200 + 2 * 128 * 4 * 4 + 4 * 128 * 4 * 4 + 4 * 32 * 4 * 4 + 3 * 4 * 4 * 4;

    /** The int4 kernel for this shape: the pipelined one where it applies, else {@code kv_decode_int4}. */
    static String int4Kernel(KiviLayout layout, int group) {
        boolean fits = group == 4
                && layout.headDim() == 128
                && layout.headDim() / layout.valueGroupChannels() <= INT4_PIPE_MAX_VALUE_GROUPS;
        return pipelinedInt4 && fits ? "kv_decode_int4_g4_d128_p3" : "kv_decode_int4";
    }

    /** Dynamic shared memory of a pipelined kernel (the .cu file's pipe_shared_bytes), 0 for the others. */
    static int sharedBytes(String kernel, int group) {
        int p = kernel.lastIndexOf("_p");
        if (p < 0 || !PIPELINED.contains(kernel)) {
            return 0;
        }
        int units = Integer.parseInt(kernel.substring(p + 2));
        int warps = 4, tile = 32, d = 128;
        return warps * units * tile * d * 2 + d * group * 4 + warps * tile * group * 4 + 2 * warps * group * 4;
    }

    /** The decode kernel for {@code type} at this shape: the fixed-shape one where compiled, else the general one. */
    static String decodeKernel(KvDType type, int group, int headDim) {
        String base = switch (type) {
            case F16 -> "kv_decode_f16";
            case BF16 -> "kv_decode_bf16";
            case F32 -> throw new IllegalArgumentException("the exact decode kernels read f16 or bf16 rows");
        };
        String shape = "g" + group + "_d" + headDim;
        if (!fixedShapeKernels || !FIXED_SHAPES.contains(shape)) {
            return base;
        }
        String pipelined = base + "_" + shape + "_p" + pipelineUnits;
        return pipelineUnits > 0 && PIPELINED.contains(pipelined) ? pipelined : base + "_" + shape;
    }

    @Override
    public synchronized void decodeInt4(
            long groupPointers,
            int kvHeads,
            KiviLayout layout,
            long queries,
            long visible,
            long partOut,
            long partLse,
            int tokens,
            int group,
            int chunk,
            int maxChunks,
            float scale) {
        KernelEmulator.checkInt4Chunk(chunk);
        String kernel = int4Kernel(layout, group);
        launchShared(
                kernel,
                kernel.equals("kv_decode_int4") ? 0 : INT4_PIPE_SHARED,
                maxChunks,
                kvHeads,
                tokens,
                THREADS,
                p(groupPointers),
                p(queries),
                p(visible),
                p(partOut),
                p(partLse),
                p(kvHeads),
                p(group),
                p(layout.headDim()),
                p(chunk),
                p(maxChunks),
                p(scale),
                p(layout.groupTokens()),
                p(layout.valueGroupChannels()));
    }

    @Override
    public synchronized void combine(
            long partOut,
            long partLse,
            long extraOut,
            long extraLse,
            long out,
            long lse,
            int rows,
            int maxChunks,
            int D) {
        if (extraOut == 0) {
            launch("kv_combine", rows, 1, 1, THREADS, p(partOut), p(partLse), p(out), p(lse), p(maxChunks), p(D));
        } else {
            launch(
                    "kv_combine_hybrid",
                    rows,
                    1,
                    1,
                    THREADS,
                    p(partOut),
                    p(partLse),
                    p(extraOut),
                    p(extraLse),
                    p(out),
                    p(lse),
                    p(maxChunks),
                    p(D));
        }
    }

    private static int blocks(long elements) {
        return (int) Math.max(1, Math.min(4096, (elements + 255) / 256));
    }

    @Override
    public synchronized void append(KvDType type, long src, int tokens, int headDim, long keys, long values, int row0) {
        String kernel = type == KvDType.BF16 ? "kv_append_bf16" : "kv_append_f16";
        launch(
                kernel,
                blocks((long) tokens * headDim),
                1,
                1,
                256,
                p(src),
                p(tokens),
                p(headDim),
                p(keys),
                p(values),
                p(row0));
    }

    @Override
    public synchronized void gather(long src, long dst, long sources, int moved, int elems) {
        launch(
                "kv_gather_rows",
                blocks((long) moved * elems),
                1,
                1,
                256,
                p(src),
                p(dst),
                p(sources),
                p(moved),
                p(elems));
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        current();
        cuCtxSynchronize();
        for (Ev e : events) {
            cuEventDestroy(e.event);
        }
        events.clear();
        for (Alloc a : allocations.values()) {
            cuMemFree(a);
        }
        allocations.clear();
        for (HostBuffer h : hostBuffers.keySet()) {
            cuMemFreeHost(((Host) h).pointer());
        }
        hostBuffers.clear();
        hostAllocated = 0;
        allocated = 0;
        cuStreamDestroy(stream);
        cuStreamDestroy(transfers);
        cuModuleUnload(module);
        cuDevicePrimaryCtxRelease(device);
        closed = true;
    }
}
