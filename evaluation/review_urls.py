"""The review pages' URLs (evaluation.review_views), mounted at the site root beside the
batch pages (/batches/<id>/review/…) and the set pages (/sets/<id>/share/)."""

from __future__ import annotations

from django.urls import path

from evaluation import review_views as views

app_name = "review"

urlpatterns = [
    path("batches/<int:pk>/review/", views.review_mode, name="mode"),
    path("batches/<int:pk>/review/<int:item_id>/", views.review_save, name="save"),
    path("batches/<int:pk>/review/<int:item_id>/promote/", views.review_promote, name="promote"),
    path("batches/<int:pk>/reviews/upload/", views.reviews_upload, name="upload"),
    path("batches/<int:pk>/reviews/apply/", views.reviews_apply, name="apply"),
    path("batches/<int:pk>/share/", views.batch_share, name="share"),
    path("sets/<int:pk>/share/", views.set_share, name="set_share"),
]
