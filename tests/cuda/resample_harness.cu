// Standalone check of the adaptive resampler's CUDA kernels, without
// TensorFlow. It runs the very kernels the op uses (adaptive_resample_gpu.cu.h)
// against host calls of the same per-pixel functions (adaptive_resample.h) on
// random inputs, k = 7 (scale 2) and k = 13 (scale 4), with some offsets far
// outside the image, in double, float and half. See tests/cuda/README.md.
//
// Build and run from the repository root (one command, a minute):
//   nvcc -std=c++17 -O3 -arch=native -I. tests/cuda/resample_harness.cu \
//        -o /tmp/resample_harness && /tmp/resample_harness
//
// Exit status: 0 all within tolerance; 1 a check failed; 2 no CUDA device
// (the CPU self-check passed); 3 a CUDA call failed (e.g. no kernel image for
// this GPU: rebuild with its -arch).

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "custom_ops/cc/kernels/adaptive_resample.h"

namespace car_tf {
// As in the op: half sums run in float.
template <>
struct AccumulatorType<__half> {
  using type = float;
};
}  // namespace car_tf

#include "custom_ops/cc/kernels/adaptive_resample_gpu.cu.h"

namespace {

using car_tf::ResampleShape;

constexpr int kExitFailed = 1;
constexpr int kExitNoDevice = 2;
constexpr int kExitCudaError = 3;

// A CUDA call failed: report it and stop with its own exit status, so a
// missing kernel image is never mistaken for a numerical mismatch.
void CheckCuda(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return;
  std::fprintf(stderr, "CUDA error in %s: %s (%s)\n", what,
               cudaGetErrorName(status), cudaGetErrorString(status));
  std::exit(kExitCudaError);
}

double ToDouble(double v) { return v; }
double ToDouble(float v) { return v; }
double ToDouble(__half v) { return static_cast<double>(__half2float(v)); }

template <typename T>
T FromDouble(double v) {
  return static_cast<T>(v);
}
template <>
__half FromDouble<__half>(double v) {
  return __float2half(static_cast<float>(v));
}

// Inputs of one problem, generated in double and rounded to T by the caller.
struct Problem {
  ResampleShape shape;
  std::vector<double> image, kernels, offsets_x, offsets_y, grad_output;
};

// scale 2 uses k = 7 and scale 4 uses k = 13 (k = 3 * scale + 1, as in CAR).
//
// With `exact_positions`, offsets are multiples of 1/64 below 32 in
// magnitude: exact in half, float and double, so every sampling position is
// computed exactly whatever the precision or FMA contraction, host and GPU
// pick the same bilinear cell, and only the summation order can differ. (A
// position one rounding step either side of a cell edge would otherwise
// switch the offset gradient to the neighbouring cell's slope.)
Problem MakeProblem(int64_t batch, int64_t height, int64_t width,
                    int64_t channels, int scale, bool exact_positions,
                    std::mt19937_64* rng) {
  Problem p;
  ResampleShape& s = p.shape;
  s.batch = batch;
  s.in_height = height;
  s.in_width = width;
  s.channels = channels;
  s.out_height = height / scale;
  s.out_width = width / scale;
  s.kernel_size = 3 * scale + 1;
  s.offset_unit = scale;
  const int64_t taps = s.out_pixels() * s.taps();
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::normal_distribution<double> normal(0.0, 0.5);
  p.image.resize(batch * height * width * channels);
  for (double& v : p.image) v = unit(*rng);
  p.kernels.resize(taps);
  for (double& v : p.kernels) v = (unit(*rng) - 0.2) * 2.0 / s.taps();
  for (std::vector<double>* offsets : {&p.offsets_x, &p.offsets_y}) {
    offsets->resize(taps);
    for (double& v : *offsets) {
      v = normal(*rng);
      // One tap in ten lands 5..31 offset units away: far outside the image
      // near its borders, exercising the reflect-and-clamp path.
      if (unit(*rng) < 0.1) v = (unit(*rng) < 0.5 ? -1 : 1) * (5 + 26 * unit(*rng));
      if (exact_positions) v = std::round(v * 64) / 64;
    }
  }
  p.grad_output.resize(s.out_pixels() * channels);
  for (double& v : p.grad_output) v = 2.0 * unit(*rng) - 1.0;
  return p;
}

template <typename T>
std::vector<T> Cast(const std::vector<double>& values) {
  std::vector<T> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = FromDouble<T>(values[i]);
  return out;
}

// All four results of one forward + backward pass.
template <typename T>
struct Results {
  std::vector<T> output, grad_image, grad_kernels, grad_offsets_x,
      grad_offsets_y;
};

// Host AddFn: the image gradient's element `target - base` of a buffer in
// the accumulator type.
template <typename T>
struct HostAdd {
  using Acc = typename car_tf::AccumulatorType<T>::type;
  const T* base;
  Acc* wide;
  __host__ __device__ void operator()(T* target, Acc value) const {
    wide[target - base] += value;
  }
};

// The CPU path: host calls of the header functions, as the op's CPU functor
// makes them (one pass per pixel, a plain add for the image gradient).
template <typename T>
Results<T> RunHost(const ResampleShape& s, const std::vector<T>& image,
                   const std::vector<T>& kernels,
                   const std::vector<T>& offsets_x,
                   const std::vector<T>& offsets_y,
                   const std::vector<T>& grad_output) {
  using Acc = typename car_tf::AccumulatorType<T>::type;
  Results<T> r;
  r.output.resize(s.out_pixels() * s.channels);
  r.grad_kernels.resize(kernels.size());
  r.grad_offsets_x.resize(kernels.size());
  r.grad_offsets_y.resize(kernels.size());
  std::vector<Acc> wide(image.size(), Acc(0));
  // Accumulate in Acc, as the GPU does for half, then round once.
  const T* base = image.data();
  const HostAdd<T> add{base, wide.data()};
  for (int64_t p = 0; p < s.out_pixels(); ++p) {
    car_tf::ResampleForwardPixel(s, image.data(), kernels.data(),
                                 offsets_x.data(), offsets_y.data(),
                                 r.output.data(), p);
    car_tf::ResampleParamGradPixel(
        s, image.data(), kernels.data(), offsets_x.data(), offsets_y.data(),
        grad_output.data(), r.grad_kernels.data(), r.grad_offsets_x.data(),
        r.grad_offsets_y.data(), p);
    car_tf::ResampleImageGradPixel(
        s, kernels.data(), offsets_x.data(), offsets_y.data(),
        grad_output.data(), const_cast<T*>(base), p, 0, s.channels, add);
  }
  r.grad_image.resize(image.size());
  for (size_t i = 0; i < wide.size(); ++i) r.grad_image[i] = static_cast<T>(wide[i]);
  return r;
}

template <typename T>
struct DeviceBuffer {
  T* data = nullptr;
  size_t size = 0;
  explicit DeviceBuffer(size_t n) : size(n) {
    CheckCuda(cudaMalloc(&data, std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc");
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) {
    CheckCuda(cudaMemcpy(data, host.data(), size * sizeof(T),
                         cudaMemcpyHostToDevice),
              "cudaMemcpy to device");
  }
  ~DeviceBuffer() { cudaFree(data); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  std::vector<T> Download() const {
    std::vector<T> host(size);
    CheckCuda(cudaMemcpy(host.data(), data, size * sizeof(T),
                         cudaMemcpyDeviceToHost),
              "cudaMemcpy to host");
    return host;
  }
};

// Device copies of one problem's inputs and outputs.
template <typename T>
struct DeviceProblem {
  DeviceBuffer<T> image, kernels, offsets_x, offsets_y, grad_output;
  DeviceBuffer<T> output, grad_image, grad_kernels, grad_offsets_x,
      grad_offsets_y;
  DeviceBuffer<char> scratch;
  DeviceProblem(const ResampleShape& s, const std::vector<T>& image_h,
                const std::vector<T>& kernels_h,
                const std::vector<T>& offsets_x_h,
                const std::vector<T>& offsets_y_h,
                const std::vector<T>& grad_output_h)
      : image(image_h),
        kernels(kernels_h),
        offsets_x(offsets_x_h),
        offsets_y(offsets_y_h),
        grad_output(grad_output_h),
        output(grad_output_h.size()),
        grad_image(image_h.size()),
        grad_kernels(kernels_h.size()),
        grad_offsets_x(kernels_h.size()),
        grad_offsets_y(kernels_h.size()),
        scratch(car_tf::gpu::ImageGradScratchBytes<T>(s)) {}

  cudaError_t Forward(const ResampleShape& s, cudaStream_t stream) {
    return car_tf::gpu::LaunchResampleForward(stream, s, image.data,
                                              kernels.data, offsets_x.data,
                                              offsets_y.data, output.data);
  }
  cudaError_t Backward(const ResampleShape& s, cudaStream_t stream) {
    return car_tf::gpu::LaunchResampleBackward(
        stream, s, image.data, kernels.data, offsets_x.data, offsets_y.data,
        grad_output.data, grad_image.data, grad_kernels.data,
        grad_offsets_x.data, grad_offsets_y.data, scratch.data);
  }
};

template <typename T>
double MaxAbsDiff(const std::vector<T>& a, const std::vector<T>& b,
                  double* max_ref) {
  double worst = 0;
  *max_ref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double ref = ToDouble(b[i]);
    const double diff = std::fabs(ToDouble(a[i]) - ref);
    // NaN must fail, so compare with ! rather than >.
    if (!(diff <= worst)) worst = diff;
    *max_ref = std::max(*max_ref, std::fabs(ref));
  }
  return worst;
}

template <typename T>
const char* TypeName();
template <>
const char* TypeName<double>() { return "double"; }
template <>
const char* TypeName<float>() { return "float"; }
template <>
const char* TypeName<__half>() { return "half"; }

// Tolerance relative to max(1, largest reference magnitude). Float and half
// differ from the host only by summation order (atomics) and FMA contraction;
// half also by its final rounding (2^-11 relative).
template <typename T>
double Tolerance();
template <>
double Tolerance<double>() { return 1e-10; }
template <>
double Tolerance<float>() { return 2e-5; }
template <>
double Tolerance<__half>() { return 2e-3; }

// Runs one problem on the GPU in type T and compares with the host.
template <typename T>
bool CompareOnGpu(const Problem& p, const char* label) {
  const ResampleShape& s = p.shape;
  const auto image = Cast<T>(p.image), kernels = Cast<T>(p.kernels),
             offsets_x = Cast<T>(p.offsets_x), offsets_y = Cast<T>(p.offsets_y),
             grad_output = Cast<T>(p.grad_output);
  const Results<T> host =
      RunHost(s, image, kernels, offsets_x, offsets_y, grad_output);

  DeviceProblem<T> d(s, image, kernels, offsets_x, offsets_y, grad_output);
  CheckCuda(d.Forward(s, nullptr), "forward launch");
  CheckCuda(d.Backward(s, nullptr), "backward launch");
  CheckCuda(cudaDeviceSynchronize(), "kernel execution");
  const std::vector<T>* host_values[] = {&host.output, &host.grad_image,
                                         &host.grad_kernels,
                                         &host.grad_offsets_x,
                                         &host.grad_offsets_y};
  const DeviceBuffer<T>* device_values[] = {&d.output, &d.grad_image,
                                            &d.grad_kernels, &d.grad_offsets_x,
                                            &d.grad_offsets_y};
  const char* names[] = {"forward", "grad_image", "grad_kernels",
                         "grad_offsets_x", "grad_offsets_y"};
  bool ok = true;
  for (int i = 0; i < 5; ++i) {
    double max_ref;
    const double err =
        MaxAbsDiff(device_values[i]->Download(), *host_values[i], &max_ref);
    const double tol = Tolerance<T>() * std::max(1.0, max_ref);
    const bool pass = err <= tol;
    ok = ok && pass;
    std::printf("  %-6s %-8s %-15s max abs error %.3e (tolerance %.1e)%s\n",
                TypeName<T>(), label, names[i], err, tol,
                pass ? "" : "  FAILED");
  }
  return ok;
}

// --- CPU self-check, in double: does the host path (the GPU's reference)
// compute the op's derivatives? Needs no GPU.

double Dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

bool SelfCheck(const Problem& p, const char* label, std::mt19937_64* rng) {
  const ResampleShape& s = p.shape;
  const Results<double> r = RunHost(s, p.image, p.kernels, p.offsets_x,
                                    p.offsets_y, p.grad_output);
  const auto loss = [&](const std::vector<double>& image,
                        const std::vector<double>& kernels,
                        const std::vector<double>& offsets_x,
                        const std::vector<double>& offsets_y) {
    return Dot(p.grad_output,
               RunHost(s, image, kernels, offsets_x, offsets_y, p.grad_output)
                   .output);
  };
  bool ok = true;
  const auto report = [&](const char* what, double err, double tol) {
    const bool pass = err <= tol;
    ok = ok && pass;
    std::printf("  self-check %-8s %-15s error %.3e (tolerance %.1e)%s\n",
                label, what, err, tol, pass ? "" : "  FAILED");
  };

  // The output is linear in the image and in the kernels, so each gradient
  // must satisfy the adjoint identity <grad, v> = <grad_output, F(v)>.
  std::uniform_real_distribution<double> unit(-1.0, 1.0);
  std::vector<double> v_image(p.image.size()), v_kernels(p.kernels.size());
  for (double& v : v_image) v = unit(*rng);
  for (double& v : v_kernels) v = unit(*rng);
  const double image_lhs = Dot(r.grad_image, v_image);
  report("grad_image",
         std::fabs(image_lhs - loss(v_image, p.kernels, p.offsets_x, p.offsets_y)),
         1e-9 * std::max(1.0, std::fabs(image_lhs)));
  const double kernel_lhs = Dot(r.grad_kernels, v_kernels);
  report("grad_kernels",
         std::fabs(kernel_lhs - loss(p.image, v_kernels, p.offsets_x, p.offsets_y)),
         1e-9 * std::max(1.0, std::fabs(kernel_lhs)));

  // Offsets: central differences on sampled taps. The sample is bilinear, so
  // within one pixel cell the difference is exact up to rounding; a step of
  // 1e-7 crosses a cell edge with negligible probability.
  const double step = 1e-7;
  std::uniform_int_distribution<size_t> pick(0, p.kernels.size() - 1);
  for (int axis = 0; axis < 2; ++axis) {
    const std::vector<double>& grad = axis == 0 ? r.grad_offsets_x : r.grad_offsets_y;
    double worst = 0;
    for (int trial = 0; trial < 40; ++trial) {
      const size_t t = pick(*rng);
      std::vector<double> plus = axis == 0 ? p.offsets_x : p.offsets_y;
      std::vector<double> minus = plus;
      plus[t] += step;
      minus[t] -= step;
      const double numeric =
          axis == 0 ? (loss(p.image, p.kernels, plus, p.offsets_y) -
                       loss(p.image, p.kernels, minus, p.offsets_y)) /
                          (2 * step)
                    : (loss(p.image, p.kernels, p.offsets_x, plus) -
                       loss(p.image, p.kernels, p.offsets_x, minus)) /
                          (2 * step);
      const double diff = std::fabs(numeric - grad[t]);
      if (!(diff <= worst)) worst = diff;
    }
    report(axis == 0 ? "grad_offsets_x" : "grad_offsets_y", worst, 1e-6);
  }
  return ok;
}

// The tap grid of eq. 2 (tap j at j - k/2 from the LR pixel centre): at
// scale 2 the unmoved taps land on HR pixel centres, so the centre tap
// (k/2, k/2) reads HR pixel (2y, 2x) alone, and a kernel of 1/4 on taps
// (3,3), (3,4), (4,3), (4,4) gives the mean of each 2x2 HR block.
bool BlockMeanCheck() {
  ResampleShape s{1, 8, 10, 1, 4, 5, 7, 2.0};
  std::vector<double> image(8 * 10), centre(s.out_pixels() * s.taps(), 0.0),
      block(centre.size(), 0.0), zeros(centre.size(), 0.0), output(s.out_pixels()),
      output_block(s.out_pixels());
  for (size_t i = 0; i < image.size(); ++i) image[i] = std::sin(0.37 * i);
  for (int64_t p = 0; p < s.out_pixels(); ++p) {
    centre[p * 49 + 24] = 1.0;
    for (int64_t t : {24, 25, 31, 32}) block[p * 49 + t] = 0.25;
  }
  double worst = 0;
  for (int64_t p = 0; p < s.out_pixels(); ++p) {
    car_tf::ResampleForwardPixel(s, image.data(), centre.data(), zeros.data(),
                                 zeros.data(), output.data(), p);
    car_tf::ResampleForwardPixel(s, image.data(), block.data(), zeros.data(),
                                 zeros.data(), output_block.data(), p);
    const int64_t y = p / 5, x = p % 5;
    const double mean = (image[(2 * y) * 10 + 2 * x] + image[(2 * y) * 10 + 2 * x + 1] +
                         image[(2 * y + 1) * 10 + 2 * x] +
                         image[(2 * y + 1) * 10 + 2 * x + 1]) / 4;
    worst = std::max(worst, std::fabs(output[p] - image[(2 * y) * 10 + 2 * x]));
    worst = std::max(worst, std::fabs(output_block[p] - mean));
  }
  const bool pass = worst <= 1e-12;
  std::printf("  self-check centre tap = one HR pixel, 4 taps = 2x2 block mean: error %.3e%s\n",
              worst, pass ? "" : "  FAILED");
  return pass;
}

// Median milliseconds of `run` on the GPU.
template <typename Fn>
double TimeMs(Fn run, int repeats) {
  cudaEvent_t start, stop;
  CheckCuda(cudaEventCreate(&start), "cudaEventCreate");
  CheckCuda(cudaEventCreate(&stop), "cudaEventCreate");
  CheckCuda(run(), "warm-up launch");
  std::vector<float> times;
  for (int i = 0; i < repeats; ++i) {
    CheckCuda(cudaEventRecord(start), "cudaEventRecord");
    CheckCuda(run(), "timed launch");
    CheckCuda(cudaEventRecord(stop), "cudaEventRecord");
    CheckCuda(cudaEventSynchronize(stop), "kernel execution");
    float ms;
    CheckCuda(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// The training shape of CAR x4: 16 patches of 192x192x3, k = 13.
template <typename T>
void TimeTrainingShape(std::mt19937_64* rng) {
  const Problem p = MakeProblem(16, 192, 192, 3, 4, false, rng);
  DeviceProblem<T> d(p.shape, Cast<T>(p.image), Cast<T>(p.kernels),
                     Cast<T>(p.offsets_x), Cast<T>(p.offsets_y),
                     Cast<T>(p.grad_output));
  const double forward = TimeMs([&] { return d.Forward(p.shape, nullptr); }, 20);
  const double backward = TimeMs([&] { return d.Backward(p.shape, nullptr); }, 20);
  std::printf("  timing %-6s N=16 192x192x3 -> 48x48, k=13: forward %.3f ms, "
              "backward %.3f ms (median of 20)\n",
              TypeName<T>(), forward, backward);
}

}  // namespace

int main(int argc, char** argv) {
  bool cpu_only = false;
  unsigned seed = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--cpu-only") == 0) {
      cpu_only = true;
    } else if (std::strncmp(argv[i], "--seed=", 7) == 0) {
      seed = static_cast<unsigned>(std::atoi(argv[i] + 7));
    } else {
      std::fprintf(stderr, "usage: %s [--cpu-only] [--seed=N]\n", argv[0]);
      return kExitFailed;
    }
  }
  std::mt19937_64 rng(seed);
  // Non-square, batch 2, 3 channels; small enough for the double-precision
  // host reference to stay well under a second.
  const Problem small_k7 = MakeProblem(2, 12, 16, 3, 2, false, &rng);
  const Problem small_k13 = MakeProblem(2, 16, 24, 3, 4, false, &rng);

  std::printf("CPU self-check (double):\n");
  const auto cpu_start = std::chrono::steady_clock::now();
  bool ok = BlockMeanCheck();
  ok = SelfCheck(small_k7, "k=7", &rng) && ok;
  ok = SelfCheck(small_k13, "k=13", &rng) && ok;
  std::printf("  CPU self-check took %.0f ms\n",
              std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - cpu_start).count());
  if (!ok) {
    std::printf("FAILED: the host reference itself is wrong\n");
    return kExitFailed;
  }
  if (cpu_only) {
    std::printf("PASSED (CPU self-check only, --cpu-only)\n");
    return 0;
  }

  int devices = 0;
  const cudaError_t probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    std::printf("no CUDA device (%s); ran the CPU self-check only\n",
                probe != cudaSuccess ? cudaGetErrorString(probe) : "0 devices");
    return kExitNoDevice;
  }
  cudaDeviceProp prop;
  CheckCuda(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::printf("GPU 0: %s (sm_%d%d)\n", prop.name, prop.major, prop.minor);

  // Larger problems too, so that many blocks contend in the atomics.
  const Problem gpu_k7 = MakeProblem(2, 12, 16, 3, 2, true, &rng);
  const Problem gpu_k13 = MakeProblem(2, 16, 24, 3, 4, true, &rng);
  const Problem large_k7 = MakeProblem(2, 64, 96, 3, 2, true, &rng);
  const Problem large_k13 = MakeProblem(2, 96, 64, 3, 4, true, &rng);
  std::printf("GPU vs CPU (same header functions, same input precision):\n");
  for (const auto& [problem, label] :
       {std::pair<const Problem*, const char*>{&gpu_k7, "k=7"},
        {&gpu_k13, "k=13"},
        {&large_k7, "k=7L"},
        {&large_k13, "k=13L"}}) {
    ok = CompareOnGpu<double>(*problem, label) && ok;
    ok = CompareOnGpu<float>(*problem, label) && ok;
    ok = CompareOnGpu<__half>(*problem, label) && ok;
  }
  TimeTrainingShape<float>(&rng);
  TimeTrainingShape<__half>(&rng);
  std::printf(ok ? "PASSED\n" : "FAILED: GPU results past tolerance\n");
  return ok ? 0 : kExitFailed;
}
