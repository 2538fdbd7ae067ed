"""Batch pages, one module per page group (`batches.urls` maps every URL to its module).

- `list`: the BatchPage `/batches/` (BatchUpload, the column chooser, BatchList and its
  polled rows);
- `detail`: the batch detail `/batches/<id>/` (progress header and rows table: filters,
  search, sort, paging; both polled);
- `actions`: start, cancel, retry (failed or chosen rows), delete, download, and the
  page-driven processing (the inline runner's `process`);
- `common`: what they share: `_get_batch_for_user` (the staff rule), the runner context,
  `next` URLs, flash messages out of band, grade summaries.

Every page works without JavaScript (forms post and redirect); htmx requests get the
named partial of the same template instead (`"batches/list.html#list"`), plus the flash
messages swapped out of band into the page's live region.
"""
