//! Which region paw works in: `region_name` from the params, else the SDK's standard resolution.

use aws_config::default_provider::region::DefaultRegionChain;

/// `region_name` if given, else AWS_REGION / AWS_DEFAULT_REGION, the profile's region, or the
/// instance's (EC2 metadata), as the AWS SDK resolves it.
pub async fn resolve(region_name: Option<&str>, profile_name: Option<&str>) -> Option<String> {
    if let Some(region) = region_name.filter(|region| !region.is_empty()) {
        return Some(region.to_string());
    }
    let mut chain = DefaultRegionChain::builder();
    if let Some(profile) = profile_name {
        chain = chain.profile_name(profile);
    }
    chain.build().region().await.map(|region| region.to_string())
}
