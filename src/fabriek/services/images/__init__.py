"""The factory's own image registry: tokens for it, and images resolved for jobs."""

from fabriek.services.images.service import (
    CheckedImage,
    ImageRefused,
    ImageService,
    ImageUnavailable,
)

__all__ = ["CheckedImage", "ImageRefused", "ImageService", "ImageUnavailable"]
