// The adaptive resampler of CAR (Sun & Chen, TIP 2020, eqs. 1-6), over raw
// pointers so that the CPU kernels and the CUDA kernels share the math: the
// per-pixel functions below serve CUDA and float64, and float32 on the CPU runs
// a second, vectorised copy of them (the tap blocks at the end of this file)
// that performs the same operations in the same order, so both give bitwise
// the same results (tests/test_adaptive_resample.py checks it).
//
// Layout is NHWC throughout:
//   image      [N, H, W, C]
//   kernels    [N, h, w, k*k]   tap t = i*k + j, i the row inside the kernel
//   offsets_x  [N, h, w, k*k]   in units of `offset_unit` HR pixels
//   offsets_y  [N, h, w, k*k]
//   output     [N, h, w, C]
//
// out[n,y,x,c] = sum_t kernels[n,y,x,t] * S(image[n,:,:,c], py, px) with
//   px = (x + 0.5) * W / w - 0.5 + (j - k/2) + offset_unit * offsets_x[n,y,x,t]
//   py = (y + 0.5) * H / h - 0.5 + (i - k/2) + offset_unit * offsets_y[n,y,x,t]
// k/2 a real division (eq. 2's m/2), and S bilinear. For an integer scale s and
// k = 3s + 1 the unmoved taps then land on HR pixel centres (px = x*s - s - 1 + j),
// so a tap reads one pixel, not a 2x2 blend. Corner indices go through
// ReflectIndex, which equals tf.pad(mode="REFLECT") by pad() = floor(k/2) followed
// by clamping to the padded edge, without materialising a padded copy.

#ifndef CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_H_
#define CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_H_

#include <cmath>
#include <cstdint>
#if !defined(__CUDACC__)
#include <climits>
#include <cstring>
#include <vector>
#endif

#if defined(__CUDACC__)
#define CAR_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define CAR_HOST_DEVICE inline
#endif

namespace car_tf {

// Sizes of one resampling problem. All counts are int64 so that products such
// as N*H*W*C never overflow on large images.
struct ResampleShape {
  int64_t batch;
  int64_t in_height;
  int64_t in_width;
  int64_t channels;
  int64_t out_height;
  int64_t out_width;
  int64_t kernel_size;  // k; the last dimension of kernels is k*k.
  double offset_unit;

  CAR_HOST_DEVICE int64_t taps() const { return kernel_size * kernel_size; }
  CAR_HOST_DEVICE int64_t pad() const { return kernel_size / 2; }
  CAR_HOST_DEVICE int64_t out_pixels() const {
    return batch * out_height * out_width;
  }
};

// Arithmetic type for sums: half inputs accumulate in float (the GPU file
// specialises this), everything else in its own precision.
template <typename T>
struct AccumulatorType {
  using type = T;
};

// floor() with one spelling for host and device code, float and double.
CAR_HOST_DEVICE float FloorOf(float v) { return floorf(v); }
CAR_HOST_DEVICE double FloorOf(double v) { return ::floor(v); }

// Maps an integer coordinate to a valid one: clamp to [-pad, length-1+pad],
// then mirror without repeating the edge (tf.pad REFLECT). Requires
// length > pad, which the OpKernel checks. Written with selects only, so that
// the CPU tap blocks below vectorise it.
template <typename Int>
CAR_HOST_DEVICE Int ReflectIndex(Int i, Int length, Int pad) {
  i = i < -pad ? -pad : i;
  i = i > length - 1 + pad ? length - 1 + pad : i;
  i = i < 0 ? -i : i;
  const Int mirrored = 2 * (length - 1) - i;
  return i < mirrored ? i : mirrored;
}

// Floor of a sampling position, clamped so that the integer conversion is
// always defined: NaN and -inf go to the lowest index, +inf to the highest.
// The bilinear fractions are taken from the unclamped position elsewhere, so
// a non-finite position still yields NaN weights and hence a NaN output.
template <typename Acc>
CAR_HOST_DEVICE int64_t SafeFloor(Acc floor_pos, int64_t length, int64_t pad) {
  const Acc lowest = static_cast<Acc>(-pad - 1);
  const Acc highest = static_cast<Acc>(length - 1 + pad);
  if (!(floor_pos >= lowest)) return -pad - 1;
  if (floor_pos > highest) return length - 1 + pad;
  return static_cast<int64_t>(floor_pos);
}

// Where one tap reads the HR image: four in-bounds corner offsets (already
// multiplied by the NHWC strides of one image) and the bilinear fractions.
template <typename Acc>
struct TapSample {
  int64_t top_left, top_right, bottom_left, bottom_right;
  Acc frac_x, frac_y;
};

// The two neighbouring indices i0 and i0 + 1 along one axis after
// ReflectIndex, times `stride`. Interior samples, nearly all of them, skip the
// reflection branches; the result is the same either way.
CAR_HOST_DEVICE void CornerIndices(int64_t i0, int64_t length, int64_t pad,
                                   int64_t stride, int64_t* low,
                                   int64_t* high) {
  if (i0 >= 0 && i0 < length - 1) {
    *low = i0 * stride;
    *high = *low + stride;
    return;
  }
  *low = ReflectIndex<int64_t>(i0, length, pad) * stride;
  *high = ReflectIndex<int64_t>(i0 + 1, length, pad) * stride;
}

// The bilinear footprint of a sampling position (HR pixels, unclamped).
template <typename Acc>
CAR_HOST_DEVICE TapSample<Acc> LocateSample(const ResampleShape& s, Acc pos_x,
                                            Acc pos_y) {
  const int64_t pad = s.pad();
  const Acc floor_x = FloorOf(pos_x);
  const Acc floor_y = FloorOf(pos_y);
  int64_t left, right, top, bottom;
  CornerIndices(SafeFloor(floor_x, s.in_width, pad), s.in_width, pad,
                s.channels, &left, &right);
  CornerIndices(SafeFloor(floor_y, s.in_height, pad), s.in_height, pad,
                s.in_width * s.channels, &top, &bottom);

  TapSample<Acc> sample;
  sample.top_left = top + left;
  sample.top_right = top + right;
  sample.bottom_left = bottom + left;
  sample.bottom_right = bottom + right;
  sample.frac_x = pos_x - floor_x;
  sample.frac_y = pos_y - floor_y;
  return sample;
}

// Sampling positions of the taps of one output pixel: the pixel centre on
// the HR grid (eq. 1), moved by the tap's place in the kernel and by
// offset_unit times the tap's offset. The pixel functions walk the taps as
// rows i and columns j, so no tap index is ever divided by k.
template <typename Acc>
struct TapGrid {
  Acc centre_x, centre_y, unit;
  int64_t kernel_size;

  CAR_HOST_DEVICE TapGrid(const ResampleShape& s, int64_t y, int64_t x) {
    const Acc half = static_cast<Acc>(0.5);
    const Acc scale_x =
        static_cast<Acc>(s.in_width) / static_cast<Acc>(s.out_width);
    const Acc scale_y =
        static_cast<Acc>(s.in_height) / static_cast<Acc>(s.out_height);
    centre_x = (static_cast<Acc>(x) + half) * scale_x - half;
    centre_y = (static_cast<Acc>(y) + half) * scale_y - half;
    unit = static_cast<Acc>(s.offset_unit);
    kernel_size = s.kernel_size;
  }

  // j - k/2 computed as (2j - k) / 2: exact, and the same float the tap-block
  // path's TapTable holds, so both paths stay bitwise equal.
  CAR_HOST_DEVICE Acc TapOffset(int64_t j) const {
    return static_cast<Acc>(2 * j - kernel_size) * static_cast<Acc>(0.5);
  }
  CAR_HOST_DEVICE Acc X(int64_t j, Acc offset_x) const {
    return centre_x + TapOffset(j) + unit * offset_x;
  }
  CAR_HOST_DEVICE Acc Y(int64_t i, Acc offset_y) const {
    return centre_y + TapOffset(i) + unit * offset_y;
  }
};

// Kernel weight times the four bilinear weights of one tap.
template <typename Acc>
struct CornerWeights {
  Acc top_left, top_right, bottom_left, bottom_right;
};

template <typename Acc>
CAR_HOST_DEVICE CornerWeights<Acc> WeighCorners(Acc weight,
                                                const TapSample<Acc>& tap) {
  const Acc one = static_cast<Acc>(1);
  CornerWeights<Acc> w;
  w.top_left = weight * (one - tap.frac_x) * (one - tap.frac_y);
  w.top_right = weight * tap.frac_x * (one - tap.frac_y);
  w.bottom_left = weight * (one - tap.frac_x) * tap.frac_y;
  w.bottom_right = weight * tap.frac_x * tap.frac_y;
  return w;
}

// Splits a flat output-pixel index into (batch, row, column).
CAR_HOST_DEVICE void SplitPixel(const ResampleShape& s, int64_t pixel,
                                int64_t* n, int64_t* y, int64_t* x) {
  *x = pixel % s.out_width;
  const int64_t rows = pixel / s.out_width;
  *y = rows % s.out_height;
  *n = rows / s.out_height;
}

// Channels handled per pass: enough for RGB(A) in one pass, small enough for
// registers on the GPU. Larger C costs one more tap walk per extra block.
constexpr int kChannelBlock = 4;

// Forward value of one output pixel, for all channels.
template <typename T>
CAR_HOST_DEVICE void ResampleForwardPixel(const ResampleShape& s,
                                          const T* image, const T* kernels,
                                          const T* offsets_x,
                                          const T* offsets_y, T* output,
                                          int64_t pixel) {
  using Acc = typename AccumulatorType<T>::type;
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<Acc> grid(s, y, x);
  const T* plane = image + n * s.in_height * s.in_width * s.channels;
  const int64_t k = s.kernel_size;
  const int64_t taps = s.taps();
  const T* pixel_kernel = kernels + pixel * taps;
  const T* pixel_dx = offsets_x + pixel * taps;
  const T* pixel_dy = offsets_y + pixel * taps;
  T* out = output + pixel * s.channels;

  for (int64_t c0 = 0; c0 < s.channels; c0 += kChannelBlock) {
    const int block = static_cast<int>(
        s.channels - c0 < kChannelBlock ? s.channels - c0 : kChannelBlock);
    const T* channel = plane + c0;
    Acc sum[kChannelBlock] = {};
    for (int64_t i = 0, t = 0; i < k; ++i) {
      for (int64_t j = 0; j < k; ++j, ++t) {
        const TapSample<Acc> tap = LocateSample<Acc>(
            s, grid.X(j, static_cast<Acc>(pixel_dx[t])),
            grid.Y(i, static_cast<Acc>(pixel_dy[t])));
        const CornerWeights<Acc> w =
            WeighCorners(static_cast<Acc>(pixel_kernel[t]), tap);
        for (int c = 0; c < block; ++c) {
          sum[c] += w.top_left * static_cast<Acc>(channel[tap.top_left + c]) +
                    w.top_right * static_cast<Acc>(channel[tap.top_right + c]) +
                    w.bottom_left *
                        static_cast<Acc>(channel[tap.bottom_left + c]) +
                    w.bottom_right *
                        static_cast<Acc>(channel[tap.bottom_right + c]);
        }
      }
    }
    for (int c = 0; c < block; ++c) out[c0 + c] = static_cast<T>(sum[c]);
  }
}

// The derivatives of one tap's bilinear sample, dotted with the upstream
// gradient over all channels: with respect to the kernel weight (eq. 4) and
// to the sampling position along x and y (eq. 6, before the weight and
// offset_unit factors).
template <typename T, typename Acc>
CAR_HOST_DEVICE void TapParamGrad(const ResampleShape& s, const T* plane,
                                  const T* grad_out,
                                  const TapSample<Acc>& tap, Acc* d_kernel,
                                  Acc* d_x, Acc* d_y) {
  const Acc one = static_cast<Acc>(1);
  Acc sum_kernel = 0, sum_x = 0, sum_y = 0;
  for (int64_t c = 0; c < s.channels; ++c) {
    const Acc g = static_cast<Acc>(grad_out[c]);
    const Acc tl = static_cast<Acc>(plane[tap.top_left + c]);
    const Acc tr = static_cast<Acc>(plane[tap.top_right + c]);
    const Acc bl = static_cast<Acc>(plane[tap.bottom_left + c]);
    const Acc br = static_cast<Acc>(plane[tap.bottom_right + c]);
    const Acc top = tl + tap.frac_x * (tr - tl);
    const Acc bottom = bl + tap.frac_x * (br - bl);
    sum_kernel += g * (top + tap.frac_y * (bottom - top));
    sum_x += g * ((one - tap.frac_y) * (tr - tl) + tap.frac_y * (br - bl));
    sum_y += g * (bottom - top);
  }
  *d_kernel = sum_kernel;
  *d_x = sum_x;
  *d_y = sum_y;
}

// Writes the kernel and offset gradients of tap t (eqs. 4 and 6, with the
// offset_unit chain factor) and returns the tap's kernel weight.
template <typename T, typename Acc>
CAR_HOST_DEVICE Acc StoreTapParamGrad(const ResampleShape& s, const T* plane,
                                      const T* grad_out,
                                      const TapSample<Acc>& tap,
                                      const T* kernels, Acc unit, int64_t t,
                                      T* grad_kernels, T* grad_offsets_x,
                                      T* grad_offsets_y) {
  Acc d_kernel, d_x, d_y;
  TapParamGrad(s, plane, grad_out, tap, &d_kernel, &d_x, &d_y);
  const Acc weight = static_cast<Acc>(kernels[t]);
  grad_kernels[t] = static_cast<T>(d_kernel);
  grad_offsets_x[t] = static_cast<T>(weight * unit * d_x);
  grad_offsets_y[t] = static_cast<T>(weight * unit * d_y);
  return weight;
}

// Adds one tap's share of the output gradient, channels
// [channel_begin, channel_end), to the four image pixels it sampled.
template <typename T, typename Acc, typename AddFn>
CAR_HOST_DEVICE void ScatterTapGrad(T* grad_plane, const T* grad_out,
                                    const TapSample<Acc>& tap, Acc weight,
                                    int64_t channel_begin, int64_t channel_end,
                                    AddFn add) {
  const CornerWeights<Acc> w = WeighCorners(weight, tap);
  for (int64_t c = channel_begin; c < channel_end; ++c) {
    const Acc g = static_cast<Acc>(grad_out[c]);
    add(grad_plane + tap.top_left + c, w.top_left * g);
    add(grad_plane + tap.top_right + c, w.top_right * g);
    add(grad_plane + tap.bottom_left + c, w.bottom_left * g);
    add(grad_plane + tap.bottom_right + c, w.bottom_right * g);
  }
}

// Gradients with respect to the kernel weights and both offsets, for every
// tap of one output pixel (eqs. 4 and 6, plus the offset_unit chain factor).
// Each pixel owns its own slice of the three outputs, so pixels can run in
// parallel without synchronisation.
template <typename T>
CAR_HOST_DEVICE void ResampleParamGradPixel(
    const ResampleShape& s, const T* image, const T* kernels,
    const T* offsets_x, const T* offsets_y, const T* grad_output,
    T* grad_kernels, T* grad_offsets_x, T* grad_offsets_y, int64_t pixel) {
  using Acc = typename AccumulatorType<T>::type;
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<Acc> grid(s, y, x);
  const T* plane = image + n * s.in_height * s.in_width * s.channels;
  const int64_t k = s.kernel_size;
  const int64_t first = pixel * s.taps();
  const T* grad_out = grad_output + pixel * s.channels;

  for (int64_t i = 0, t = first; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j, ++t) {
      const TapSample<Acc> tap =
          LocateSample<Acc>(s, grid.X(j, static_cast<Acc>(offsets_x[t])),
                            grid.Y(i, static_cast<Acc>(offsets_y[t])));
      StoreTapParamGrad(s, plane, grad_out, tap, kernels, grid.unit, t,
                        grad_kernels, grad_offsets_x, grad_offsets_y);
    }
  }
}

// Scatters the image gradient of one output pixel, channels
// [channel_begin, channel_end), through `add(pointer, value)`. The CPU calls it
// with a plain add from one thread per (image, channel), which is race-free
// and deterministic; the GPU calls it with atomicAdd.
template <typename T, typename AddFn>
CAR_HOST_DEVICE void ResampleImageGradPixel(
    const ResampleShape& s, const T* kernels, const T* offsets_x,
    const T* offsets_y, const T* grad_output, T* grad_image, int64_t pixel,
    int64_t channel_begin, int64_t channel_end, AddFn add) {
  using Acc = typename AccumulatorType<T>::type;
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<Acc> grid(s, y, x);
  T* plane = grad_image + n * s.in_height * s.in_width * s.channels;
  const int64_t k = s.kernel_size;
  const int64_t first = pixel * s.taps();
  const T* grad_out = grad_output + pixel * s.channels;

  for (int64_t i = 0, t = first; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j, ++t) {
      const TapSample<Acc> tap =
          LocateSample<Acc>(s, grid.X(j, static_cast<Acc>(offsets_x[t])),
                            grid.Y(i, static_cast<Acc>(offsets_y[t])));
      ScatterTapGrad(plane, grad_out, tap, static_cast<Acc>(kernels[t]),
                     channel_begin, channel_end, add);
    }
  }
}

// ResampleParamGradPixel and ResampleImageGradPixel over all channels in one
// walk of the taps, locating each tap once. Every value it writes or adds is
// bitwise the one the two separate functions produce, in the same order per
// grad_image element, so a caller may use either form.
template <typename T, typename AddFn>
CAR_HOST_DEVICE void ResampleBackwardPixel(
    const ResampleShape& s, const T* image, const T* kernels,
    const T* offsets_x, const T* offsets_y, const T* grad_output,
    T* grad_image, T* grad_kernels, T* grad_offsets_x, T* grad_offsets_y,
    int64_t pixel, AddFn add) {
  using Acc = typename AccumulatorType<T>::type;
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<Acc> grid(s, y, x);
  const int64_t plane_offset = n * s.in_height * s.in_width * s.channels;
  const T* plane = image + plane_offset;
  T* grad_plane = grad_image + plane_offset;
  const int64_t k = s.kernel_size;
  const int64_t first = pixel * s.taps();
  const T* grad_out = grad_output + pixel * s.channels;

  for (int64_t i = 0, t = first; i < k; ++i) {
    for (int64_t j = 0; j < k; ++j, ++t) {
      const TapSample<Acc> tap =
          LocateSample<Acc>(s, grid.X(j, static_cast<Acc>(offsets_x[t])),
                            grid.Y(i, static_cast<Acc>(offsets_y[t])));
      const Acc weight =
          StoreTapParamGrad(s, plane, grad_out, tap, kernels, grid.unit, t,
                            grad_kernels, grad_offsets_x, grad_offsets_y);
      ScatterTapGrad(grad_plane, grad_out, tap, weight, int64_t{0},
                     s.channels, add);
    }
  }
}

#if !defined(__CUDACC__)
// ---------------------------------------------------------------------------
// Tap blocks (CPU, float32). The CPU kernels walk the taps of a pixel in
// blocks of kTapBlock, structure-of-arrays, so that the compiler vectorises
// locating, weighting and differentiating them even for baseline SSE2; only
// the image reads of the forward pass and the gradient scatter stay scalar.
// Every value is computed by the same operations in the same order as in the
// per-tap functions above (which the GPU and float64 use), so both paths give
// bitwise identical results; tests/test_adaptive_resample.py checks that.

constexpr int kTapBlock = 64;

// Whether the block path applies: it is instantiated for 1, 3 and 4 channels
// (grey, RGB, RGBA), SplitPosition tells integral from fractional floats only
// below 2^23, and the block addresses one image plane with int32 offsets.
inline bool TapBlocksFit(const ResampleShape& s) {
  const int64_t float_integers = int64_t{1} << 23;
  return (s.channels == 1 || s.channels == 3 || s.channels == 4) &&
         s.in_width + s.pad() + 1 < float_integers &&
         s.in_height + s.pad() + 1 < float_integers &&
         s.in_height * s.in_width * s.channels <= INT32_MAX;
}

// The kernel-relative offsets j - k/2 and i - k/2 (real k/2) of every tap
// t = i*k + j, as the floats TapGrid::X and TapGrid::Y add, so the block loops
// never divide t.
struct TapTable {
  std::vector<float> dx, dy;

  explicit TapTable(int64_t k) : dx(k * k), dy(k * k) {
    for (int64_t t = 0; t < k * k; ++t) {
      dx[t] = static_cast<float>(2 * (t % k) - k) * 0.5f;
      dy[t] = static_cast<float>(2 * (t / k) - k) * 0.5f;
    }
  }
};

inline uint32_t BitsOf(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

inline float FloatOf(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

// FloorOf and SafeFloor of one coordinate in branch-free integer and bit
// arithmetic, bitwise equal to them for every float (NaN, inf, huge, -0.0):
// `frac` = pos - floor(pos), `index` = the clamped floor. Floats of magnitude
// 2^23 and above are integral and their own floor; masking them to zero keeps
// the int32 conversion defined. Needs length + pad < 2^23 (TapBlocksFit).
inline void SplitPosition(float pos, int32_t length, int32_t pad, float* frac,
                          int32_t* index) {
  const uint32_t bits = BitsOf(pos);
  const uint32_t small =
      0u - static_cast<uint32_t>(std::fabs(pos) < 8388608.0f);
  const int32_t truncated = static_cast<int32_t>(FloatOf(bits & small));
  const int32_t floor_int =
      truncated - static_cast<int32_t>(pos < static_cast<float>(truncated));
  // copysign gives floor(-0.0) == -0.0, as floorf does.
  const float floor_small =
      std::copysign(static_cast<float>(floor_int), pos);
  *frac = pos - FloatOf((BitsOf(floor_small) & small) | (bits & ~small));
  const int32_t lowest = -pad - 1;
  const int32_t highest = length - 1 + pad;
  const int32_t clamped =
      floor_int < lowest ? lowest : (floor_int > highest ? highest : floor_int);
  const int32_t beyond = pos > 0.0f ? highest : lowest;  // NaN: lowest.
  *index = static_cast<int32_t>((static_cast<uint32_t>(clamped) & small) |
                                (static_cast<uint32_t>(beyond) & ~small));
}

// Up to kTapBlock located taps: corner offsets into one image plane, the
// bilinear fractions, and the kernel weight times each bilinear weight.
struct TapBlock {
  int32_t top_left[kTapBlock], top_right[kTapBlock];
  int32_t bottom_left[kTapBlock], bottom_right[kTapBlock];
  float frac_x[kTapBlock], frac_y[kTapBlock];
  float w_top_left[kTapBlock], w_top_right[kTapBlock];
  float w_bottom_left[kTapBlock], w_bottom_right[kTapBlock];
};

// Locates `count` consecutive taps starting at tap `first_tap` of a pixel;
// offsets_x, offsets_y and kernels point at that first tap.
inline void LocateTapBlock(const ResampleShape& s, const TapGrid<float>& grid,
                           const TapTable& table, int64_t first_tap,
                           const float* __restrict offsets_x,
                           const float* __restrict offsets_y,
                           const float* __restrict kernels, int count,
                           TapBlock* __restrict block) {
  const int32_t width = static_cast<int32_t>(s.in_width);
  const int32_t height = static_cast<int32_t>(s.in_height);
  const int32_t channels = static_cast<int32_t>(s.channels);
  const int32_t row_stride = width * channels;
  const int32_t pad = static_cast<int32_t>(s.pad());
  const float* __restrict tap_dx = table.dx.data() + first_tap;
  const float* __restrict tap_dy = table.dy.data() + first_tap;
  const float centre_x = grid.centre_x, centre_y = grid.centre_y;
  const float unit = grid.unit;
  const float one = 1.0f;
  for (int u = 0; u < count; ++u) {
    const float pos_x = centre_x + tap_dx[u] + unit * offsets_x[u];
    const float pos_y = centre_y + tap_dy[u] + unit * offsets_y[u];
    float frac_x, frac_y;
    int32_t x0, y0;
    SplitPosition(pos_x, width, pad, &frac_x, &x0);
    SplitPosition(pos_y, height, pad, &frac_y, &y0);
    const int32_t left = ReflectIndex(x0, width, pad) * channels;
    const int32_t right = ReflectIndex(x0 + 1, width, pad) * channels;
    const int32_t top = ReflectIndex(y0, height, pad) * row_stride;
    const int32_t bottom = ReflectIndex(y0 + 1, height, pad) * row_stride;
    block->top_left[u] = top + left;
    block->top_right[u] = top + right;
    block->bottom_left[u] = bottom + left;
    block->bottom_right[u] = bottom + right;
    block->frac_x[u] = frac_x;
    block->frac_y[u] = frac_y;
    // As WeighCorners.
    const float weight = kernels[u];
    block->w_top_left[u] = weight * (one - frac_x) * (one - frac_y);
    block->w_top_right[u] = weight * frac_x * (one - frac_y);
    block->w_bottom_left[u] = weight * (one - frac_x) * frac_y;
    block->w_bottom_right[u] = weight * frac_x * frac_y;
  }
}

// ResampleForwardPixel for float32 and kChannels (1, 3 or 4) channels, by
// tap blocks.
template <int kChannels>
void ForwardPixelBlocked(const ResampleShape& s, const TapTable& table,
                         const float* image, const float* kernels,
                         const float* offsets_x, const float* offsets_y,
                         float* output, int64_t pixel) {
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<float> grid(s, y, x);
  const float* __restrict plane =
      image + n * s.in_height * s.in_width * kChannels;
  const int64_t taps = s.taps();
  float sum[kChannels] = {};
  TapBlock block;
  for (int64_t t0 = 0; t0 < taps; t0 += kTapBlock) {
    const int count =
        static_cast<int>(taps - t0 < kTapBlock ? taps - t0 : kTapBlock);
    const int64_t first = pixel * taps + t0;
    LocateTapBlock(s, grid, table, t0, offsets_x + first, offsets_y + first,
                   kernels + first, count, &block);
    for (int u = 0; u < count; ++u) {
      for (int c = 0; c < kChannels; ++c) {
        sum[c] += block.w_top_left[u] * plane[block.top_left[u] + c] +
                  block.w_top_right[u] * plane[block.top_right[u] + c] +
                  block.w_bottom_left[u] * plane[block.bottom_left[u] + c] +
                  block.w_bottom_right[u] * plane[block.bottom_right[u] + c];
      }
    }
  }
  for (int c = 0; c < kChannels; ++c) output[pixel * kChannels + c] = sum[c];
}

// TapParamGrad and the parameter-gradient writes of ResampleParamGradPixel
// for one block. A function of its own so that the restrict-qualified
// pointers let the compiler vectorise it across taps.
template <int kChannels>
inline void ParamGradTapBlock(
    const float* __restrict plane, const int32_t* __restrict top_left,
    const int32_t* __restrict top_right, const int32_t* __restrict bottom_left,
    const int32_t* __restrict bottom_right, const float* __restrict frac_x,
    const float* __restrict frac_y, const float* __restrict kernels,
    const float* __restrict grad_out, float unit,
    float* __restrict grad_kernels, float* __restrict grad_offsets_x,
    float* __restrict grad_offsets_y, int count) {
  const float one = 1.0f;
  for (int u = 0; u < count; ++u) {
    const float fx = frac_x[u], fy = frac_y[u];
    float sum_kernel = 0, sum_x = 0, sum_y = 0;
    for (int c = 0; c < kChannels; ++c) {
      const float g = grad_out[c];
      const float tl = plane[top_left[u] + c];
      const float tr = plane[top_right[u] + c];
      const float bl = plane[bottom_left[u] + c];
      const float br = plane[bottom_right[u] + c];
      const float top = tl + fx * (tr - tl);
      const float bottom = bl + fx * (br - bl);
      sum_kernel += g * (top + fy * (bottom - top));
      sum_x += g * ((one - fy) * (tr - tl) + fy * (br - bl));
      sum_y += g * (bottom - top);
    }
    const float weight = kernels[u];
    grad_kernels[u] = sum_kernel;
    grad_offsets_x[u] = weight * unit * sum_x;
    grad_offsets_y[u] = weight * unit * sum_y;
  }
}

// ResampleBackwardPixel for float32 and kChannels (1, 3 or 4) channels, by tap
// blocks, with the same per-element order of grad_image additions.
template <int kChannels>
void BackwardPixelBlocked(const ResampleShape& s, const TapTable& table,
                          const float* image, const float* kernels,
                          const float* offsets_x, const float* offsets_y,
                          const float* grad_output, float* grad_image,
                          float* grad_kernels, float* grad_offsets_x,
                          float* grad_offsets_y, int64_t pixel) {
  int64_t n, y, x;
  SplitPixel(s, pixel, &n, &y, &x);
  const TapGrid<float> grid(s, y, x);
  const int64_t plane_offset = n * s.in_height * s.in_width * kChannels;
  const float* plane = image + plane_offset;
  float* __restrict grad_plane = grad_image + plane_offset;
  const int64_t taps = s.taps();
  float grad_out[kChannels];
  for (int c = 0; c < kChannels; ++c) {
    grad_out[c] = grad_output[pixel * kChannels + c];
  }
  TapBlock block;
  // Weight times upstream gradient for every corner, channel and tap.
  float add_tl[kChannels][kTapBlock], add_tr[kChannels][kTapBlock];
  float add_bl[kChannels][kTapBlock], add_br[kChannels][kTapBlock];
  for (int64_t t0 = 0; t0 < taps; t0 += kTapBlock) {
    const int count =
        static_cast<int>(taps - t0 < kTapBlock ? taps - t0 : kTapBlock);
    const int64_t first = pixel * taps + t0;
    LocateTapBlock(s, grid, table, t0, offsets_x + first, offsets_y + first,
                   kernels + first, count, &block);
    ParamGradTapBlock<kChannels>(
        plane, block.top_left, block.top_right, block.bottom_left,
        block.bottom_right, block.frac_x, block.frac_y, kernels + first,
        grad_out, grid.unit, grad_kernels + first, grad_offsets_x + first,
        grad_offsets_y + first, count);
    for (int c = 0; c < kChannels; ++c) {
      for (int u = 0; u < count; ++u) {
        add_tl[c][u] = block.w_top_left[u] * grad_out[c];
        add_tr[c][u] = block.w_top_right[u] * grad_out[c];
        add_bl[c][u] = block.w_bottom_left[u] * grad_out[c];
        add_br[c][u] = block.w_bottom_right[u] * grad_out[c];
      }
    }
    for (int u = 0; u < count; ++u) {
      for (int c = 0; c < kChannels; ++c) {
        grad_plane[block.top_left[u] + c] += add_tl[c][u];
        grad_plane[block.top_right[u] + c] += add_tr[c][u];
        grad_plane[block.bottom_left[u] + c] += add_bl[c][u];
        grad_plane[block.bottom_right[u] + c] += add_br[c][u];
      }
    }
  }
}
#endif  // !defined(__CUDACC__)

// Device-dispatched entry points. The CPU specialisations live in
// adaptive_resample_op.cc, the GPU ones in adaptive_resample_op_gpu.cu.cc.
// Each returns false only when a device launch failed.
template <typename Device, typename T>
struct AdaptiveResampleForward {
  bool operator()(const Device& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, T* output);
};

template <typename Device, typename T>
struct AdaptiveResampleBackward {
  // grad_image is zero-filled by the functor itself.
  bool operator()(const Device& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, const T* grad_output, T* grad_image,
                  T* grad_kernels, T* grad_offsets_x, T* grad_offsets_y);
};

}  // namespace car_tf

#endif  // CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_H_
