from __future__ import annotations

from django.urls import path

from batches.views import actions, detail
from batches.views import list as batch_list

app_name = "batches"

urlpatterns = [
    path("", batch_list.batch_page, name="list"),
    path("rows/", batch_list.batch_rows, name="rows"),
    path("<int:pk>/", detail.batch_detail, name="detail"),
    path("<int:pk>/progress/", detail.batch_progress, name="progress"),
    path("<int:pk>/rows/", detail.batch_item_rows, name="item_rows"),
    path("<int:pk>/retry-rows/", actions.batch_retry_items, name="retry_items"),
    path("<int:pk>/start/", actions.batch_start, name="start"),
    path("<int:pk>/process/", actions.batch_process, name="process"),
    path("<int:pk>/cancel/", actions.batch_cancel, name="cancel"),
    path("<int:pk>/budget/", actions.batch_budget, name="budget"),
    path("<int:pk>/retry/", actions.batch_retry, name="retry"),
    path("<int:pk>/delete/", actions.batch_delete, name="delete"),
    path("<int:pk>/download/<str:fmt>/", actions.batch_download, name="download"),
]
