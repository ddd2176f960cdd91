"""MATLAB-compatible bicubic, checked against values worked out by hand from the cubic kernel."""

import numpy as np
import pytest

from harness.imaging.matlab_resize import cubic, imresize, resize_matrix


def test_kernel_values_worked_by_hand():
    # a = -0.5: 1.5|x|^3 - 2.5|x|^2 + 1 inside 1, -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 up to 2.
    assert cubic(np.array([0.0]))[0] == 1.0
    assert cubic(np.array([0.625]))[0] == pytest.approx(0.3896484375, abs=1e-15)
    assert cubic(np.array([0.375]))[0] == pytest.approx(0.7275390625, abs=1e-15)
    assert cubic(np.array([1.375]))[0] == pytest.approx(-0.0732421875, abs=1e-15)
    assert cubic(np.array([1.625]))[0] == pytest.approx(-0.0439453125, abs=1e-15)
    assert cubic(np.array([2.0, 2.5, -3.0])).tolist() == [0.0, 0.0, 0.0]


def test_upscale_left_border_mirrors_the_first_samples():
    # Output 1 of x4 sits at u = 1/4 + 0.375 = 0.625; its taps at 0 and -1 mirror onto samples 1 and 2:
    # w(0.625) + w(0.375) on s1, w(1.625) + w(1.375) on s2 -> 1.1171875*s1 - 0.1171875*s2.
    row = np.array([[10.0, 50.0, 90.0, 130.0]])
    out = imresize(row, 4)
    assert out.shape == (4, 16)
    assert out[0, 0] == pytest.approx(1.1171875 * 10 - 0.1171875 * 50, abs=1e-12)
    assert np.allclose(out, out[0])  # a single row is copied down unchanged


def test_upscale_reproduces_a_ramp_inside():
    ramp = np.arange(1, 17, dtype=np.float64)[None, :] * 10  # value 10*j at sample j
    out = imresize(ramp, 4)[0]
    for x in range(1, 65):
        u = x / 4 + 0.375
        if 2 <= u - 1 and u + 2 <= 16:  # every tap inside the signal
            assert out[x - 1] == pytest.approx(10 * u, abs=1e-9)


def test_antialiased_downscale_reproduces_a_ramp_inside():
    # For 1/4, u = 4x - 1.5: taps are symmetric about u, so a linear signal comes out as its value at u.
    ramp = np.arange(1, 65, dtype=np.float64)[:, None] * 2.0
    out = imresize(np.repeat(ramp, 3, axis=1), 0.25)[:, 0]
    for x in range(1, 17):
        u = 4 * x - 1.5
        if u - 8 >= 1 and u + 8 <= 64:
            assert out[x - 1] == pytest.approx(2 * u, abs=1e-9)


def test_antialias_widens_the_kernel_when_shrinking():
    matrix = resize_matrix(64, 16, 0.25)
    assert np.count_nonzero(matrix[8]) == 16  # 4 taps stretched by 4
    assert np.allclose(matrix.sum(axis=1), 1.0)
    plain = resize_matrix(64, 16, 0.25, antialias=False)
    assert np.count_nonzero(plain[8]) == 4


def test_constant_image_stays_constant_and_uint8_rounds_half_away_from_zero():
    flat = np.full((12, 20, 3), 77, np.uint8)
    assert (imresize(flat, 0.25) == 77).all()
    assert (imresize(flat, 4) == 77).all()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
    as_float = imresize(image.astype(np.float64), 0.25)
    expected = np.floor(np.clip(as_float, 0, 255) + 0.5).astype(np.uint8)
    assert np.array_equal(imresize(image, 0.25), expected)


def test_output_size_is_ceil_of_scaled_size():
    assert imresize(np.zeros((10, 13), np.uint8), 0.25).shape == (3, 4)
    assert imresize(np.zeros((3, 4, 3), np.uint8), 4).shape == (12, 16, 3)
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), 0)
