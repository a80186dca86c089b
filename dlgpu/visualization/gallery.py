"""keras.visualization's galleries: a grid of images with matplotlib (``pip install matplotlib``), saved to
``path`` or shown, optionally with class labels, boxes or segmentation masks drawn on them."""

from __future__ import annotations

import math

import numpy as np

from dlgpu.visualization.drawing import (_batched_images, _data_format, _host, draw_bounding_boxes,
                                         draw_segmentation_masks)


def _pyplot(function):
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(f"The `{function}` function requires the `matplotlib` package. Please install it with "
                          f"`pip install matplotlib` (or `pip install 'dlgpu[visualization]'`).") from None
    return plt


def plot_image_gallery(images, y_true=None, y_pred=None, label_map=None, rows=None, cols=None, value_range=(0, 255),
                       scale=2, path=None, show=None, transparent=True, dpi=60, legend_handles=None,
                       data_format=None):
    """A rows x cols grid of the first images (default: about square), each titled with its label and
    prediction names from ``label_map`` when ``y_true``/``y_pred`` are given; saved to ``path`` (a PNG ...)
    or shown with plt.show().  ``value_range``: the range of the images' values, mapped to [0, 255]."""
    plt = _pyplot("plot_image_gallery")
    if path is not None and show:
        raise ValueError("plot_gallery() expects either `path` to be set, or `show` to be true.")
    if (y_true is not None or y_pred is not None) and label_map is None:
        raise ValueError("If `y_true` or `y_pred` are provided, a `label_map` must also be provided.")
    show = show if show is not None else path is None
    data_format = _data_format(data_format)
    images = _host(images)
    if images.ndim != 4:
        raise ValueError("`plot_images_gallery()` requires you to batch your `np.array` samples together.")
    batch_size = images.shape[0]
    rows = rows or int(math.ceil(math.sqrt(batch_size)))
    cols = cols or int(math.ceil(batch_size // rows))
    if rows < 1 or cols < 1:
        raise ValueError(f"plot_image_gallery: rows and cols must be positive; received rows={rows}, cols={cols} "
                         f"for {batch_size} images")
    images = images[: rows * cols]
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    low, high = value_range
    images = (images.astype(np.float32) - low) / np.float32(high - low) * np.float32(255)
    if images.shape[-1] == 1:
        images = images[..., 0]  # imshow draws (H, W) as grey only with a grey colour map, set below
    fig, axes = plt.subplots(nrows=rows, ncols=cols, figsize=(cols * scale, rows * scale), frameon=False,
                             layout="tight", squeeze=False, sharex="row", sharey="col")
    fig.subplots_adjust(wspace=0, hspace=0)
    if legend_handles is not None:
        fig.legend(handles=legend_handles, loc="lower center")
    y_true = None if y_true is None else _host(y_true)
    y_pred = None if y_pred is None else _host(y_pred)
    for index, axis in enumerate(axes.reshape(-1)):
        axis.axis("off")
        if index >= len(images):
            continue
        axis.imshow(np.clip(images[index], 0, 255).astype("uint8"), cmap="gray" if images.ndim == 3 else None,
                    vmin=0, vmax=255)
        axis.margins(x=0, y=0)
        title = []
        if y_true is not None and index < len(y_true):
            title.append(f"Label: {label_map.get(_key(y_true[index]), 'Unknown')}")
        if y_pred is not None and index < len(y_pred):
            title.append(f"Pred: {label_map.get(_key(y_pred[index]), 'Unknown')}")
        if title:
            axis.set_title("  ".join(title), fontsize=8)
    if path is not None:
        plt.savefig(fname=path, pad_inches=0, bbox_inches="tight", transparent=transparent, dpi=dpi)
        plt.close(fig)
    elif show:
        plt.show()
        plt.close(fig)


def _key(label):
    """A numpy scalar label as the plain int (or str) a label_map is keyed by."""
    return label.item() if isinstance(label, np.generic) else label


def plot_bounding_box_gallery(images, bounding_box_format, y_true=None, y_pred=None, value_range=(0, 255),
                              true_color=(0, 188, 212), pred_color=(255, 235, 59), line_thickness=2, font_scale=1.0,
                              text_thickness=None, class_mapping=None, ground_truth_mapping=None,
                              prediction_mapping=None, legend=False, legend_handles=None, rows=None, cols=None,
                              data_format=None, **kwargs):
    """plot_image_gallery of the images with the true boxes (``y_true``, a dict as draw_bounding_boxes takes)
    drawn in ``true_color`` and the predicted ones in ``pred_color``; ``legend=True`` adds a legend of the
    two.  Other keyword arguments (path, show, scale, dpi ...) go to plot_image_gallery."""
    _pyplot("plot_bounding_box_gallery")
    prediction_mapping = prediction_mapping or class_mapping
    ground_truth_mapping = ground_truth_mapping or class_mapping
    data_format = _data_format(data_format)
    images = _batched_images(images, "plot_bounding_box_gallery")
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    if legend and legend_handles:
        raise ValueError("Only pass `legend` OR `legend_handles` to "
                         "`keras.visualization.plot_bounding_box_gallery()`.")
    # the boxes are drawn on the images as plot_image_gallery will show them (in [0, 255])
    low, high = value_range
    plotted = (images.astype(np.float32) - low) / np.float32(high - low) * np.float32(255)
    plotted = np.clip(plotted, 0, 255).astype("uint8")
    draw = dict(bounding_box_format=bounding_box_format, line_thickness=line_thickness,
                text_thickness=text_thickness, font_scale=font_scale, data_format="channels_last")
    if y_true is not None:
        plotted = draw_bounding_boxes(plotted, y_true, color=true_color, class_mapping=ground_truth_mapping, **draw)
    if y_pred is not None:
        plotted = draw_bounding_boxes(plotted, y_pred, color=pred_color, class_mapping=prediction_mapping, **draw)
    if legend:
        from matplotlib import patches
        legend_handles = [patches.Patch(color=np.array(true_color) / 255.0, label="Ground Truth"),
                          patches.Patch(color=np.array(pred_color) / 255.0, label="Prediction")]
    return plot_image_gallery(plotted, value_range=(0, 255), legend_handles=legend_handles, rows=rows, cols=cols,
                              data_format="channels_last", **kwargs)


def plot_segmentation_mask_gallery(images, num_classes, value_range=(0, 255), y_true=None, y_pred=None,
                                   color_mapping=None, blend=True, alpha=0.8, ignore_index=-1, data_format=None,
                                   **kwargs):
    """plot_image_gallery with one row per image: the image, then the image with the true masks drawn
    (``y_true``), then with the predicted ones (``y_pred``), as draw_segmentation_masks draws them."""
    _pyplot("plot_segmentation_mask_gallery")
    data_format = _data_format(data_format)
    images = _batched_images(images, "plot_segmentation_mask_gallery")
    if data_format == "channels_first":
        images = images.transpose(0, 2, 3, 1)
    low, high = value_range
    images = np.clip((images.astype(np.float32) - low) / np.float32(high - low) * np.float32(255), 0, 255)
    columns = [images]
    for masks in (y_true, y_pred):
        if masks is None:
            continue
        masks = _host(masks)
        if data_format == "channels_first" and masks.ndim == 4:
            masks = masks.transpose(0, 2, 3, 1)
        drawn = draw_segmentation_masks(images, masks.astype("int32"), num_classes=num_classes,
                                        color_mapping=color_mapping, alpha=alpha, blend=blend,
                                        ignore_index=ignore_index, data_format="channels_last")
        columns.append(np.asarray(drawn, np.float32))
    gallery = np.stack(columns, axis=1).reshape(-1, *images.shape[1:])
    return plot_image_gallery(gallery, value_range=(0, 255), rows=images.shape[0], cols=len(columns),
                              data_format="channels_last", **kwargs)
