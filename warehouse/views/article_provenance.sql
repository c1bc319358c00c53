-- Where each stored article came from and how it was processed: every feed entry that surfaced its URL, the
-- page fetch, the extractor, the publication-date source, the quality flags, the dedup verdict and the NER pipeline.
with surfaced as (
    select url,
           list_sort(list_distinct(list(feed))) as feeds,
           list(struct_pack(feed := feed, guid := guid, first_seen_at := first_seen_at) order by first_seen_at)
               as feed_entries
    from entries
    group by url
),
copies as (
    select duplicate_of as article_id, count(*) as copies
    from duplicates
    group by all
),
final as (
    select a.article_id, a.url, a.title, a.is_seed, a.seed_file,
           a.feed as first_feed, a.entry_guid as first_entry_guid,
           coalesce(s.feeds, []) as feeds, coalesce(s.feed_entries, []) as feed_entries,
           a.http_status, a.final_url, a.canonical_url,
           p.content_type, p.bytes as page_bytes, p.outcome as page_outcome,
           a.extractor, a.extractor_version, a.extractor_options,
           a.body_source, a.fallback_reason,
           a.published_at, a.published_source,
           a.access, a.is_teaser, a.is_consent_page,
           'new' as dedup_verdict, a.dedup_candidates, a.dedup_nearest, a.dedup_nearest_jaccard,
           a.dedup_nearest_containment, coalesce(c.copies, 0) as copies_found,
           a.ner_pipeline, a.ner_skip_reason,
           coalesce(r.url, l.url) is not null as has_raw_html,
           coalesce(r.fetched_at, l.fetched_at) as raw_html_fetched_at,
           a.run_id, a.loaded_at
    from articles a
    left join surfaced s on s.url = a.url
    left join page_fetches p on p.url = a.url
    left join copies c on c.article_id = a.article_id
    left join raw_archive r on r.url = a.url
    left join raw_pages l on l.url = a.url  -- kept before 0003_raw_html_archive
)
select * from final
