//! Presets: storage providers (endpoint patterns and region hints from the
//! original tool's provider notes; Wasabi's and MinIO's from their own
//! documentation), schedules and retention policies.

use crate::cli::Provider;
use crate::config::RawRetention;

/// What a provider preset fills in.
#[derive(Debug, Clone, Copy)]
pub struct ProviderPreset {
    pub provider: Provider,
    pub label: &'static str,
    /// The default region, and an example of one.
    pub region: Option<&'static str>,
    pub region_hint: &'static str,
    /// `{region}` is replaced by the region; `None`: the operator types it.
    pub endpoint: Option<fn(&str) -> String>,
    pub endpoint_hint: &'static str,
    /// Where the keys come from, in one line.
    pub keys_hint: &'static str,
}

pub const PROVIDERS: &[ProviderPreset] = &[
    ProviderPreset {
        provider: Provider::IdriveE2,
        label: "iDrive E2",
        region: None,
        region_hint: "the region code shown in the E2 console, e.g. eu-west-3",
        endpoint: None,
        endpoint_hint: "the endpoint shown in the E2 console, e.g. t5k4.ldn.idrivee2-61.com (no https://)",
        keys_hint: "E2 console → Access Keys → create a key",
    },
    ProviderPreset {
        provider: Provider::Aws,
        label: "AWS S3",
        region: Some("us-east-1"),
        region_hint: "the bucket's region, e.g. us-east-1 or eu-west-3",
        endpoint: Some(aws_endpoint),
        endpoint_hint: "s3.amazonaws.com for us-east-1, s3.REGION.amazonaws.com elsewhere",
        keys_hint: "an IAM user with access to the bucket → Security credentials → access key",
    },
    ProviderPreset {
        provider: Provider::Backblaze,
        label: "Backblaze B2",
        region: None,
        region_hint: "the bucket's region, e.g. us-west-004 (from its S3 endpoint)",
        endpoint: Some(|r| format!("s3.{r}.backblazeb2.com")),
        endpoint_hint: "s3.REGION.backblazeb2.com, as the bucket's details show it",
        keys_hint: "App Keys → an application key with read/write access to the bucket",
    },
    ProviderPreset {
        provider: Provider::DigitalOcean,
        label: "DigitalOcean Spaces",
        region: Some("nyc3"),
        region_hint: "the Space's datacenter, e.g. nyc3, ams3, fra1, sgp1",
        endpoint: Some(|r| format!("{r}.digitaloceanspaces.com")),
        endpoint_hint: "REGION.digitaloceanspaces.com",
        keys_hint: "API → Spaces Keys → generate a key",
    },
    ProviderPreset {
        provider: Provider::Wasabi,
        label: "Wasabi",
        region: Some("us-east-1"),
        region_hint: "the bucket's region, e.g. us-east-1, eu-central-1, ap-northeast-1",
        endpoint: Some(|r| format!("s3.{r}.wasabisys.com")),
        endpoint_hint: "s3.REGION.wasabisys.com (Wasabi's service URLs)",
        keys_hint: "Wasabi console → Access Keys → create a key",
    },
    ProviderPreset {
        provider: Provider::Minio,
        label: "MinIO (self-hosted)",
        region: Some("us-east-1"),
        region_hint: "us-east-1 unless the server sets MINIO_REGION",
        endpoint: None,
        endpoint_hint: "host:port of the server, e.g. https://minio.example:9000 (http:// only on a trusted network)",
        keys_hint: "an access key of a MinIO user allowed to read and write the bucket",
    },
    ProviderPreset {
        provider: Provider::Other,
        label: "Other S3-compatible server",
        region: None,
        region_hint: "the region the provider documents",
        endpoint: None,
        endpoint_hint: "host name without https://, or http://host:port for a server on a trusted network",
        keys_hint: "an access key allowed to list, read, write and delete in the bucket",
    },
];

fn aws_endpoint(region: &str) -> String {
    if region == "us-east-1" {
        "s3.amazonaws.com".into()
    } else {
        format!("s3.{region}.amazonaws.com")
    }
}

pub fn provider(p: Provider) -> &'static ProviderPreset {
    PROVIDERS
        .iter()
        .find(|x| x.provider == p)
        .unwrap_or(&PROVIDERS[PROVIDERS.len() - 1])
}

/// A named schedule.
pub struct SchedulePreset {
    pub name: &'static str,
    pub label: &'static str,
    /// 5 fields, minute first (as crontab).
    pub cron: &'static str,
}

pub const SCHEDULES: &[SchedulePreset] = &[
    SchedulePreset {
        name: "daily",
        label: "Daily at 03:00",
        cron: "0 3 * * *",
    },
    SchedulePreset {
        name: "twice-daily",
        label: "Twice a day (03:00 and 15:00)",
        cron: "0 3,15 * * *",
    },
    SchedulePreset {
        name: "every-6-hours",
        label: "Every 6 hours",
        cron: "0 */6 * * *",
    },
    SchedulePreset {
        name: "hourly",
        label: "Every hour",
        cron: "0 * * * *",
    },
    SchedulePreset {
        name: "weekly",
        label: "Weekly (Sunday 03:00)",
        cron: "0 3 * * 0",
    },
];

/// A preset's name or a cron line (5 or 6 fields) → the cron line.
pub fn schedule(input: &str) -> Result<String, String> {
    let input = input.trim();
    if let Some(p) = SCHEDULES.iter().find(|p| p.name.eq_ignore_ascii_case(input)) {
        return Ok(p.cron.to_string());
    }
    crate::schedule::Schedule::parse(input)
        .map(|s| s.as_str().to_string())
        .map_err(|e| {
            let names: Vec<&str> = SCHEDULES.iter().map(|p| p.name).collect();
            format!("{e}; or one of: {}", names.join(", "))
        })
}

/// A named retention policy.
pub struct RetentionPreset {
    pub name: &'static str,
    pub label: &'static str,
    pub policy: fn() -> Option<RawRetention>,
}

pub const RETENTIONS: &[RetentionPreset] = &[
    RetentionPreset {
        name: "standard",
        label: "Standard: last 7, 14 daily, 8 weekly, 12 monthly",
        policy: || {
            Some(RawRetention {
                keep_last: Some(7),
                keep_daily: Some(14),
                keep_weekly: Some(8),
                keep_monthly: Some(12),
                ..RawRetention::default()
            })
        },
    },
    RetentionPreset {
        name: "minimal",
        label: "Minimal: last 3, 7 daily",
        policy: || {
            Some(RawRetention {
                keep_last: Some(3),
                keep_daily: Some(7),
                ..RawRetention::default()
            })
        },
    },
    RetentionPreset {
        name: "long",
        label: "Long: 30 daily, 12 weekly, 24 monthly, 5 yearly",
        policy: || {
            Some(RawRetention {
                keep_daily: Some(30),
                keep_weekly: Some(12),
                keep_monthly: Some(24),
                keep_yearly: Some(5),
                ..RawRetention::default()
            })
        },
    },
    RetentionPreset {
        name: "keep-all",
        label: "Keep everything (no pruning)",
        policy: || None,
    },
];

pub fn retention(name: &str) -> Result<&'static RetentionPreset, String> {
    RETENTIONS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            let names: Vec<&str> = RETENTIONS.iter().map(|p| p.name).collect();
            format!("unknown retention preset {name:?}; one of: {}", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for p in SCHEDULES {
            assert_eq!(schedule(p.name).unwrap(), p.cron);
        }
        assert_eq!(schedule("30 8 * * *").unwrap(), "30 8 * * *");
        assert_eq!(schedule("0 30 8 * * *").unwrap(), "0 30 8 * * *");
        assert!(schedule("nightly").unwrap_err().contains("daily"));
        assert_eq!(
            provider(Provider::Aws).endpoint.unwrap()("eu-west-3"),
            "s3.eu-west-3.amazonaws.com"
        );
        assert_eq!(
            provider(Provider::Aws).endpoint.unwrap()("us-east-1"),
            "s3.amazonaws.com"
        );
        assert_eq!(
            provider(Provider::Wasabi).endpoint.unwrap()("eu-central-1"),
            "s3.eu-central-1.wasabisys.com"
        );
        assert_eq!(
            provider(Provider::Backblaze).endpoint.unwrap()("us-west-004"),
            "s3.us-west-004.backblazeb2.com"
        );
        assert!((retention("standard").unwrap().policy)().is_some());
        assert!((retention("keep-all").unwrap().policy)().is_none());
        assert!(retention("forever").is_err());
    }
}
