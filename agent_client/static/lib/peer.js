// RTCPeerConnection helpers for the agent's media leg. Signaling is
// non-trickle: the offer goes out once ICE gathering is complete.

// With unreachable STUN/TURN servers gathering can hang for many seconds;
// a 15 s ring cannot wait for that, so send what has been gathered.
const ICE_GATHER_LIMIT_MS = 3000;

export function iceGatheringComplete(pc, limitMs = ICE_GATHER_LIMIT_MS) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    const timer = setTimeout(done, limitMs);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** createOffer + setLocalDescription + complete gathering; returns the SDP to send. */
export async function completeOffer(pc, options = {}) {
  await pc.setLocalDescription(await pc.createOffer(options));
  await iceGatheringComplete(pc);
  return pc.localDescription.sdp;
}

/** Puts the bridge's codec first; the other codecs stay as a fallback. */
export function preferCodec(transceiver, codecName) {
  const capabilities = RTCRtpReceiver.getCapabilities?.('audio');
  if (!capabilities || !transceiver?.setCodecPreferences || !codecName) return;
  const wanted = `audio/${codecName}`.toLowerCase();
  const first = (codec) => (codec.mimeType.toLowerCase() === wanted ? 0 : 1);
  const ordered = [...capabilities.codecs].sort((a, b) => first(a) - first(b));
  try {
    transceiver.setCodecPreferences(ordered);
  } catch (err) {
    console.warn('hotline: could not set codec preferences', err);
  }
}

/** The ICE username fragment of an SDP: it changes on an ICE restart. */
export function iceUfrag(sdp) {
  return /^a=ice-ufrag:(.+)$/m.exec(sdp ?? '')?.[1]?.trim() ?? null;
}
