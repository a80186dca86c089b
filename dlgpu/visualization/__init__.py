"""keras.visualization: image galleries (matplotlib) and boxes or segmentation masks drawn on images."""

from dlgpu.visualization.drawing import draw_bounding_boxes, draw_segmentation_masks
from dlgpu.visualization.gallery import (plot_bounding_box_gallery, plot_image_gallery,
                                         plot_segmentation_mask_gallery)

__all__ = ["draw_bounding_boxes", "draw_segmentation_masks", "plot_bounding_box_gallery", "plot_image_gallery",
           "plot_segmentation_mask_gallery"]
