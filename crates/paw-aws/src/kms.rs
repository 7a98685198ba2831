//! KMS on the AWS SDK for Rust: a provenance `Signer` (`kms:Sign`, `kms:GetPublicKey`) with an
//! ECC_NIST_P256 key (ECDSA) or an RSA key (RSASSA-PSS).

use async_trait::async_trait;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use paw_core::provenance::{KeyAlgorithm, PublicKey, Signer};
use paw_core::{Error, ErrorKind, Result};

use crate::aws_error;

/// The largest message KMS signs as it is (`MessageType::Raw`); a longer one is signed by its
/// SHA-256 (`Digest`), which gives a signature that verifies the same.
const RAW_LIMIT: usize = 4096;

pub struct KmsSigner {
    client: Client,
    key: String,
    /// The key's public key, asked once: it says how the key signs.
    public: tokio::sync::OnceCell<PublicKey>,
}

impl KmsSigner {
    pub fn new(config: &aws_config::SdkConfig, key: &str) -> KmsSigner {
        KmsSigner { client: Client::new(config), key: key.to_string(), public: tokio::sync::OnceCell::new() }
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn key_id(&self) -> String {
        self.key.clone()
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let algorithm = match self.public_key().await?.algorithm {
            KeyAlgorithm::RsaPssSha256 => SigningAlgorithmSpec::RsassaPssSha256,
            _ => SigningAlgorithmSpec::EcdsaSha256,
        };
        let (message_type, message) = if message.len() <= RAW_LIMIT {
            (MessageType::Raw, message.to_vec())
        } else {
            (MessageType::Digest, paw_core::provenance::sha256(message))
        };
        let signed = self
            .client
            .sign()
            .key_id(&self.key)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(algorithm)
            .send()
            .await
            .map_err(|err| aws_error("kms:Sign", err))?;
        let signature = signed.signature.ok_or_else(|| Error::new(ErrorKind::Aws, "kms:Sign returned no signature"))?;
        Ok(signature.into_inner())
    }

    async fn public_key(&self) -> Result<PublicKey> {
        let key = self
            .public
            .get_or_try_init(|| async {
                let key = self
                    .client
                    .get_public_key()
                    .key_id(&self.key)
                    .send()
                    .await
                    .map_err(|err| aws_error("kms:GetPublicKey", err))?;
                let spki =
                    key.public_key.ok_or_else(|| Error::new(ErrorKind::Aws, "kms:GetPublicKey returned no key"))?;
                PublicKey::from_spki(spki.into_inner()).map_err(|what| {
                    Error::new(ErrorKind::Config, format!("the KMS key {}: {what}", self.key)).help(
                        "make a signing key with `aws kms create-key --key-spec ECC_NIST_P256 --key-usage SIGN_VERIFY` \
                         (or RSA_2048 to RSA_4096)",
                    )
                })
            })
            .await?;
        Ok(key.clone())
    }
}
