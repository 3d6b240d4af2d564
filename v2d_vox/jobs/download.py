"""``download``: URL tables in, shards out."""

from __future__ import annotations

from typing import Annotated, Any

from subsamplers import build_chain

from ..config import READ_WITH, Job, ReaderConfig, YtdlpConfig, load_config, make_limits
from ..logger import format_summary
from ..options import (
    Config,
    Distributor,
    DistributorArgs,
    EnableWandb,
    Help,
    IncrementalMode,
    MaxShardRetry,
    OutputFormat,
    ProcessesCount,
    Progress,
    ResourceLimits,
    ThreadCount,
    WandbProject,
    documented,
)
from ..reader import scheme_of
from ..runner import prepare, run_job
from ..sharding import FORMATS, TableSpec, shard_tables


@documented
def download(
    url_list: Annotated[str | list[str], Help(
        "a table file, a list of them, or a folder of them (csv, tsv, parquet, json, jsonl, txt); "
        "local paths or fsspec URLs")],
    output_folder: Annotated[str, Help("where shards go (local path or fsspec URL)")] = "dataset",
    *,
    input_format: Annotated[str, Help("the tables' format; auto: from the extension", ("auto", *FORMATS))] = "auto",
    url_col: Annotated[str, Help("column of the media URLs")] = "url",
    caption_col: Annotated[str | None, Help("column of the captions, saved as each sample's txt")] = None,
    clip_col: Annotated[str | None, Help("column of the clip spans, [[start, end], ...] in seconds")] = None,
    save_additional_columns: Annotated[list[str] | None, Help(
        "other columns to keep in the metadata (None: all of them)")] = None,
    samples_per_shard: Annotated[int, Help("input rows per shard (clips may make more output samples)")] = 1000,
    config: Config = "default",
    output_format: OutputFormat = "webdataset",
    processes_count: ProcessesCount = None,
    thread_count: ThreadCount = 8,
    timeout: Annotated[float, Help(
        "HTTP read timeout in seconds; one row's whole download, retries included, has 4x this")] = 30.0,
    connect_timeout: Annotated[float, Help("HTTP connect timeout in seconds")] = 10.0,
    retries: Annotated[int, Help("HTTP retries on 5xx, resets and timeouts (never on 4xx)")] = 3,
    max_size_mb: Annotated[float, Help("files larger than this fail")] = 1024.0,
    user_agent: Annotated[str, Help("the HTTP User-Agent header")] = ReaderConfig.user_agent,
    url_schemes: Annotated[list[str] | None, Help(
        "URL schemes rows may use, e.g. http https file s3 (None: http, https and the tables' own scheme: "
        "a local table may name local paths, a table on s3 s3 URLs)")] = None,
    cross_host_redirects: Annotated[bool, Help("follow HTTP redirects to another host")] = True,
    max_retry_after: Annotated[float, Help(
        "seconds of a server's Retry-After that are waited (within the deadline); a longer one fails the row")] = 60.0,
    limits: ResourceLimits = None,
    reader: Annotated[str, Help(
        "how each row is read: auto picks yt-dlp for URLs of sites yt-dlp knows (YouTube...) and plain HTTP "
        "(or fsspec) for the rest", READ_WITH)] = "auto",
    url_template: Annotated[str | None, Help(
        "turns the url column into URLs, e.g. 'https://www.youtube.com/watch?v={url}' for a column of ids")] = None,
    ytdlp_format: Annotated[str | None, Help(
        "yt-dlp format selector (None: <= 360p H.264 mp4 + m4a audio; audio only when the config drops "
        "video)")] = None,
    cookie_file: Annotated[str | None, Help("a Netscape cookie file for yt-dlp")] = None,
    proxy: Annotated[str | None, Help("a proxy URL for yt-dlp")] = None,
    rate_limit: Annotated[int | None, Help("yt-dlp's download rate limit in bytes/s per thread")] = None,
    sleep_requests: Annotated[float, Help("seconds yt-dlp sleeps between requests")] = 0.0,
    max_blocked: Annotated[int, Help(
        "HTTP 429/403 answers in a row from one host (with growing pauses) before yt-dlp shards stop")] = 5,
    subtitle_langs: Annotated[list[str] | None, Help(
        "yt-dlp rows: subtitle languages to fetch, first found wins, manual tracks before automatic captions; "
        "the cues go to each output's json (cut to its clip)")] = None,
    captions_are_subtitles: Annotated[bool, Help(
        "the fetched subtitles' text becomes each output's txt caption (else it is only in the json)")] = False,
    ytdlp_sections: Annotated[bool, Help(
        "yt-dlp rows with clip spans download only the sections holding them (--no-ytdlp_sections: whole "
        "files)")] = True,
    incremental_mode: IncrementalMode = "incremental",
    max_shard_retry: MaxShardRetry = 1,
    distributor: Distributor = "multiprocessing",
    distributor_args: DistributorArgs = None,
    enable_wandb: EnableWandb = False,
    wandb_project: WandbProject = "v2d_vox",
    progress: Progress = True,
) -> dict[str, Any]:
    """Download the URLs of one or more tables into webdataset shards and return the job summary."""
    subsamplers = load_config(config)["subsamplers"]
    build_chain(subsamplers)  # fail fast on unknown names or arguments
    tables = [url_list] if isinstance(url_list, str) else url_list
    schemes = url_schemes or sorted({"http", "https", *map(scheme_of, tables)})
    job = Job(output_folder=output_folder, subsamplers=subsamplers, output_format=output_format,
              thread_count=thread_count, limits=make_limits(limits),
              reader=ReaderConfig(connect_timeout=connect_timeout, timeout=timeout, retries=retries,
                                  max_size_mb=max_size_mb, user_agent=user_agent, schemes=schemes,
                                  cross_host_redirects=cross_host_redirects, max_retry_after=max_retry_after),
              read_with=reader, url_template=url_template,
              ytdlp=YtdlpConfig(format=ytdlp_format, cookie_file=cookie_file, proxy=proxy, rate_limit=rate_limit,
                                sleep=sleep_requests, retries=retries, max_blocked=max_blocked,
                                subtitle_langs=subtitle_langs or [], captions_are_subtitles=captions_are_subtitles,
                                sections=ytdlp_sections))
    prepare(output_folder, incremental_mode, distributor, distributor_args, processes_count)
    spec = TableSpec(input_format, url_col, caption_col, clip_col, save_additional_columns, samples_per_shard)
    n_shards, rows = shard_tables(url_list, output_folder, spec)
    summary = run_job(job, list(range(n_shards)), distributor=distributor, distributor_args=distributor_args,
                      processes_count=processes_count, max_shard_retry=max_shard_retry,
                      enable_wandb=enable_wandb, wandb_project=wandb_project, progress=progress,
                      total_samples=rows)
    print(format_summary(summary), flush=True)
    return summary
