// The adaptive resampler of CAR (Sun & Chen, TIP 2020, eqs. 1-6), written once
// over raw pointers so that the CPU kernels and the CUDA kernels share the math.
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
// and S bilinear. Corner indices go through ReflectIndex, which equals
// tf.pad(mode="REFLECT") by k/2 followed by clamping to the padded edge, without
// materialising a padded copy.

#ifndef CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_H_
#define CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_H_

#include <cmath>
#include <cstdint>

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
// length > pad, which the OpKernel checks.
CAR_HOST_DEVICE int64_t ReflectIndex(int64_t i, int64_t length, int64_t pad) {
  if (i < -pad) i = -pad;
  if (i > length - 1 + pad) i = length - 1 + pad;
  if (i < 0) return -i;
  if (i > length - 1) return 2 * (length - 1) - i;
  return i;
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

template <typename Acc>
CAR_HOST_DEVICE TapSample<Acc> LocateTap(const ResampleShape& s, int64_t y,
                                         int64_t x, int64_t tap,
                                         Acc offset_x, Acc offset_y) {
  const int64_t k = s.kernel_size;
  const int64_t pad = s.pad();
  const Acc unit = static_cast<Acc>(s.offset_unit);
  const Acc scale_x = static_cast<Acc>(s.in_width) / static_cast<Acc>(s.out_width);
  const Acc scale_y =
      static_cast<Acc>(s.in_height) / static_cast<Acc>(s.out_height);
  const Acc half = static_cast<Acc>(0.5);
  const Acc pos_x = (static_cast<Acc>(x) + half) * scale_x - half +
                    static_cast<Acc>(tap % k - pad) + unit * offset_x;
  const Acc pos_y = (static_cast<Acc>(y) + half) * scale_y - half +
                    static_cast<Acc>(tap / k - pad) + unit * offset_y;
  const Acc floor_x = FloorOf(pos_x);
  const Acc floor_y = FloorOf(pos_y);

  const int64_t x0 = SafeFloor(floor_x, s.in_width, pad);
  const int64_t y0 = SafeFloor(floor_y, s.in_height, pad);
  const int64_t left = ReflectIndex(x0, s.in_width, pad) * s.channels;
  const int64_t right = ReflectIndex(x0 + 1, s.in_width, pad) * s.channels;
  const int64_t row_stride = s.in_width * s.channels;
  const int64_t top = ReflectIndex(y0, s.in_height, pad) * row_stride;
  const int64_t bottom = ReflectIndex(y0 + 1, s.in_height, pad) * row_stride;

  TapSample<Acc> sample;
  sample.top_left = top + left;
  sample.top_right = top + right;
  sample.bottom_left = bottom + left;
  sample.bottom_right = bottom + right;
  sample.frac_x = pos_x - floor_x;
  sample.frac_y = pos_y - floor_y;
  return sample;
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
// registers on the GPU. Larger C costs one more LocateTap per extra block.
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
  const T* plane = image + n * s.in_height * s.in_width * s.channels;
  const int64_t taps = s.taps();
  const T* pixel_kernel = kernels + pixel * taps;
  const T* pixel_dx = offsets_x + pixel * taps;
  const T* pixel_dy = offsets_y + pixel * taps;
  T* out = output + pixel * s.channels;

  for (int64_t c0 = 0; c0 < s.channels; c0 += kChannelBlock) {
    const int block = static_cast<int>(
        s.channels - c0 < kChannelBlock ? s.channels - c0 : kChannelBlock);
    Acc sum[kChannelBlock] = {};
    for (int64_t t = 0; t < taps; ++t) {
      const TapSample<Acc> tap =
          LocateTap<Acc>(s, y, x, t, static_cast<Acc>(pixel_dx[t]),
                         static_cast<Acc>(pixel_dy[t]));
      const Acc weight = static_cast<Acc>(pixel_kernel[t]);
      const Acc one = static_cast<Acc>(1);
      const Acc w_tl = weight * (one - tap.frac_x) * (one - tap.frac_y);
      const Acc w_tr = weight * tap.frac_x * (one - tap.frac_y);
      const Acc w_bl = weight * (one - tap.frac_x) * tap.frac_y;
      const Acc w_br = weight * tap.frac_x * tap.frac_y;
      for (int c = 0; c < block; ++c) {
        const int64_t ch = c0 + c;
        sum[c] += w_tl * static_cast<Acc>(plane[tap.top_left + ch]) +
                  w_tr * static_cast<Acc>(plane[tap.top_right + ch]) +
                  w_bl * static_cast<Acc>(plane[tap.bottom_left + ch]) +
                  w_br * static_cast<Acc>(plane[tap.bottom_right + ch]);
      }
    }
    for (int c = 0; c < block; ++c) out[c0 + c] = static_cast<T>(sum[c]);
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
  const T* plane = image + n * s.in_height * s.in_width * s.channels;
  const int64_t taps = s.taps();
  const int64_t first = pixel * taps;
  const T* grad_out = grad_output + pixel * s.channels;
  const Acc unit = static_cast<Acc>(s.offset_unit);
  const Acc one = static_cast<Acc>(1);

  for (int64_t t = 0; t < taps; ++t) {
    const TapSample<Acc> tap =
        LocateTap<Acc>(s, y, x, t, static_cast<Acc>(offsets_x[first + t]),
                       static_cast<Acc>(offsets_y[first + t]));
    Acc d_kernel = 0, d_x = 0, d_y = 0;
    for (int64_t c = 0; c < s.channels; ++c) {
      const Acc g = static_cast<Acc>(grad_out[c]);
      const Acc tl = static_cast<Acc>(plane[tap.top_left + c]);
      const Acc tr = static_cast<Acc>(plane[tap.top_right + c]);
      const Acc bl = static_cast<Acc>(plane[tap.bottom_left + c]);
      const Acc br = static_cast<Acc>(plane[tap.bottom_right + c]);
      const Acc top = tl + tap.frac_x * (tr - tl);
      const Acc bottom = bl + tap.frac_x * (br - bl);
      d_kernel += g * (top + tap.frac_y * (bottom - top));
      d_x += g * ((one - tap.frac_y) * (tr - tl) + tap.frac_y * (br - bl));
      d_y += g * (bottom - top);
    }
    const Acc weight = static_cast<Acc>(kernels[first + t]);
    grad_kernels[first + t] = static_cast<T>(d_kernel);
    grad_offsets_x[first + t] = static_cast<T>(weight * unit * d_x);
    grad_offsets_y[first + t] = static_cast<T>(weight * unit * d_y);
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
  T* plane = grad_image + n * s.in_height * s.in_width * s.channels;
  const int64_t taps = s.taps();
  const int64_t first = pixel * taps;
  const T* grad_out = grad_output + pixel * s.channels;
  const Acc one = static_cast<Acc>(1);

  for (int64_t t = 0; t < taps; ++t) {
    const TapSample<Acc> tap =
        LocateTap<Acc>(s, y, x, t, static_cast<Acc>(offsets_x[first + t]),
                       static_cast<Acc>(offsets_y[first + t]));
    const Acc weight = static_cast<Acc>(kernels[first + t]);
    const Acc w_tl = weight * (one - tap.frac_x) * (one - tap.frac_y);
    const Acc w_tr = weight * tap.frac_x * (one - tap.frac_y);
    const Acc w_bl = weight * (one - tap.frac_x) * tap.frac_y;
    const Acc w_br = weight * tap.frac_x * tap.frac_y;
    for (int64_t c = channel_begin; c < channel_end; ++c) {
      const Acc g = static_cast<Acc>(grad_out[c]);
      add(plane + tap.top_left + c, w_tl * g);
      add(plane + tap.top_right + c, w_tr * g);
      add(plane + tap.bottom_left + c, w_bl * g);
      add(plane + tap.bottom_right + c, w_br * g);
    }
  }
}

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
